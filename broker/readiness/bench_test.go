package readiness

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

var benchSizes = []int{10_000, 100_000}

// BenchmarkQuery lists a whole generated fleet with no filter: the worst
// case, where every machine becomes a card.
func BenchmarkQuery(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			f := genFleet(n, 1)
			b.ReportAllocs()
			for b.Loop() {
				cards := Query(f.machines, f.reachOf, f.visible, wire.MachinesArgs{}, now, Policy{})
				if len(cards) != n {
					b.Fatalf("got %d cards, want %d", len(cards), n)
				}
			}
		})
	}
}

// BenchmarkQueryBaseline is the cheapest listing of the same machines: copy
// the records and sort them by name. BenchmarkQuery is reported as a ratio
// to it.
func BenchmarkQueryBaseline(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			f := genFleet(n, 1)
			b.ReportAllocs()
			for b.Loop() {
				list := slices.Clone(f.machines)
				slices.SortFunc(list, func(x, y store.Machine) int { return strings.Compare(x.Name, y.Name) })
			}
		})
	}
}

// BenchmarkBaseline is Policy.Baseline, the per-client newest versions
// alerts work out at each evaluation and Query (as judgedIn, the same
// pass) once per listing, over the same fleets (one client per 50
// machines). It is reported as a ratio to BenchmarkQueryPinned.
func BenchmarkBaseline(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			f := genFleet(n, 1)
			b.ReportAllocs()
			for b.Loop() {
				if (Policy{}).Baseline(f.machines).For("client-0000") == "" {
					b.Fatal("client-0000 has no newest version")
				}
			}
		})
	}
}

// BenchmarkQueryPinned is BenchmarkQuery with Policy.AgentVersion set to
// the fleet's newest, which every client of the generated fleet runs: the
// same cards, without the per-client newest versions. BenchmarkQuery is
// reported as a ratio to it, the cost of judging agents per client.
func BenchmarkQueryPinned(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			f := genFleet(n, 1)
			p := Policy{AgentVersion: Newest(f.machines)}
			b.ReportAllocs()
			for b.Loop() {
				if cards := Query(f.machines, f.reachOf, f.visible, wire.MachinesArgs{}, now, p); len(cards) != n {
					b.Fatalf("got %d cards, want %d", len(cards), n)
				}
			}
		})
	}
}
