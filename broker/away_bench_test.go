package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// BenchmarkAwayNotice measures notice to card: from an agent's leaving
// notice on its presence stream (asleep, on its last heartbeat, then the
// close) to the machine's card showing the reason, on the broker that
// held the bridge alone ("one") and on every broker of a three-broker
// cluster gossiping on loopback ("three": until the last of them shows
// it). One op is one notice; between ops the agent opens a new presence
// stream and every broker shows it online again, untimed. Each card is
// read as a technician's request reads it (fleet.Card), polled every
// 50 µs. ms-to-card is the mean per op, ms-to-card-max the slowest op.
// The baseline, measured in the same run, is presence itself:
// ms-to-online is the mean time from the new stream's hello to the card
// showing the machine online everywhere (gossiped presence), polled the
// same way.
func BenchmarkAwayNotice(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(map[int]string{1: "one", 3: "three"}[n], func(b *testing.B) { benchAwayNotice(b, n) })
	}
}

func benchAwayNotice(b *testing.B, n int) {
	brokers := awayCluster(b, n)
	_, tok := brokers[0].fleet(b)
	ag := brokers[0].agent(b, tok, "laptop-01")
	for _, br := range brokers {
		waitFor(b, 30*time.Second, "the enrolment on "+br.cfg.Name, func() bool {
			_, ok := br.store.Machine(ag.ID())
			return ok
		})
	}
	shows := func(ok func(wire.Reachability) bool) bool {
		for _, br := range brokers {
			m, _ := br.store.Machine(ag.ID())
			if !ok(br.Broker.fleet.Card(&m).Reachability) {
				return false
			}
		}
		return true
	}
	until := func(what string, start time.Time, ok func(wire.Reachability) bool) time.Duration {
		for !shows(ok) {
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%s not on every broker within 30 s", what)
			}
			time.Sleep(50 * time.Microsecond)
		}
		return time.Since(start)
	}
	var total, worst, online time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		hello := time.Now()
		ps, _ := ag.openPresence(wire.Hello{MachineID: ag.ID(), Versions: wire.OurVersions()})
		online += until("online", hello, func(r wire.Reachability) bool { return r.Online })
		ps.beat(b, wire.Heartbeat{Seq: 1})
		b.StartTimer()
		start := time.Now()
		ps.beat(b, wire.Heartbeat{Seq: 2, Leaving: &wire.Leaving{Reason: wire.AwayAsleep, Detail: fmt.Sprintf("lid closed %d", i)}})
		ps.s.CloseWrite()
		want := fmt.Sprintf("lid closed %d", i)
		took := until("the reason", start, func(r wire.Reachability) bool {
			return r.OfflineReason == wire.AwayAsleep && r.Detail == want
		})
		b.StopTimer()
		ps.s.Close()
		total += took
		worst = max(worst, took)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-card")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-to-card-max")
	b.ReportMetric(float64(online.Microseconds())/1000/float64(b.N), "ms-to-online")
}

// awayCluster starts n brokers; with more than one, they gossip on
// loopback, every broker after the first joining it. The heartbeat is
// long so an untimed wait never counts as silence.
func awayCluster(b *testing.B, n int) []*testBroker {
	opts := func(name, join string) func(*Config) {
		return func(c *Config) {
			c.Name, c.Heartbeat = name, 10*time.Second
			if n > 1 {
				c.Gossip, c.GossipProfile = "127.0.0.1:0", "local"
				c.GossipKeys = [][]byte{[]byte("readymesh-benchmark-gossip-key!!")}
				if join != "" {
					c.Join = []string{join}
				}
			}
		}
	}
	first := startBroker(b, opts("eu-1", ""))
	out := []*testBroker{first}
	for i := 2; i <= n; i++ {
		out = append(out, startBroker(b, opts(fmt.Sprintf("eu-%d", i), first.info.Gossip)))
	}
	return out
}
