package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

// BenchmarkConsoleChange is what one change costs the broker with S
// console pages open on a fleet of 10,000 machines: the fleet's view
// computed once and shared, then each stream's comparison against what it
// last sent (hashes, filtered by the technician's clients).
//
// BenchmarkConsoleChangeBaselinePerStream is the design it replaced,
// measured in the same run: each stream runs the fleet query for its
// technician and compares the cards' JSON.
func BenchmarkConsoleChange(b *testing.B) {
	br := seededBroker(b, 10_000)
	t := &wire.Technician{Name: "alice", Clients: []string{"acme"}}
	for _, streams := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			c := br.console
			states := make([]*streamState, streams)
			// A generation newer than any view made before: each op
			// computes the view afresh, as after a real change.
			c.viewMu.Lock()
			gen := uint64(1)
			if c.view != nil {
				gen = c.view.gen + 1
			}
			c.viewMu.Unlock()
			v := c.fleetView(gen)
			for i := range states {
				states[i] = &streamState{}
				c.diff(t, v, states[i], nil)
			}
			for b.Loop() {
				gen++
				v := c.fleetView(gen)
				for _, s := range states {
					c.diff(t, v, s, func(string, []byte) {})
				}
			}
		})
	}
}

func BenchmarkConsoleChangeBaselinePerStream(b *testing.B) {
	br := seededBroker(b, 10_000)
	t := &wire.Technician{Name: "alice", Clients: []string{"acme"}}
	for _, streams := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			last := make([]map[string]string, streams)
			view := func(seen map[string]string) {
				raw, _ := json.Marshal(wire.MachinesArgs{})
				res, werr := br.techOp(context.Background(), t, "", &wire.Request{Op: wire.OpMachines, Args: raw})
				if werr != nil {
					b.Fatal(werr)
				}
				for _, card := range res.([]wire.Card) {
					full, _ := json.Marshal(card)
					seen[card.ID] = string(full)
				}
			}
			for i := range last {
				last[i] = map[string]string{}
				view(last[i])
			}
			for b.Loop() {
				for _, seen := range last {
					view(seen)
				}
			}
		})
	}
}
