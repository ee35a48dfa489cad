package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/peer/wire"
)

// BenchmarkFleetScrape is one scrape of the fleet gauges on a broker
// holding 10,000 enrolled and checked-in machines: the pass over the
// store's index with the readiness rules, the presence lookups, the
// session table and the host's connections, with no cache.
//
// It is reported as ratios to two baselines measured in the same run:
// BenchmarkFleetScrapeRest, the rest of the broker's /metrics (its
// registry with the fleet gauges served from the cache: Go runtime,
// process, and the counters of every room), and
// BenchmarkFleetScrapeListing, one listing of the whole fleet as
// `meshctl machines` makes it for an admin (readiness.Query).
func BenchmarkFleetScrape(b *testing.B) {
	tb := benchFleet(b, 10_000)
	fc := tb.fleetMetrics()
	b.ReportAllocs()
	for b.Loop() {
		if ms := fc.gather(); len(ms) == 0 {
			b.Fatal("no gauges")
		}
	}
}

func BenchmarkFleetScrapeRest(b *testing.B) {
	tb := benchFleet(b, 10_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tb.reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFleetScrapeListing(b *testing.B) {
	tb := benchFleet(b, 10_000)
	all := func(string) bool { return true }
	b.ReportAllocs()
	for b.Loop() {
		ms := tb.store.Machines()
		if cards := readiness.Query(ms, tb.reach.Reach, all, wire.MachinesArgs{}, time.Now(), tb.cfg.Readiness); len(cards) != 10_000 {
			b.Fatalf("%d cards", len(cards))
		}
	}
}

// benchFleet starts a broker holding n machines of one client.
func benchFleet(b *testing.B, n int) *testBroker {
	b.Helper()
	tb := startBroker(b)
	tb.log.stop() // the benchmark does not want every line through b.Log
	if err := fleettest.Seed(tb.store, "acme", n); err != nil {
		b.Fatal(err)
	}
	if got := tb.store.Count(); got != n {
		b.Fatal(fmt.Sprintf("%d machines seeded, want %d", got, n))
	}
	return tb
}
