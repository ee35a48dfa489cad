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
