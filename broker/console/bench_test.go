package console

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/store"
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
//
// Both read a real store through fleetOps, which answers the fleet query
// with package readiness as the broker does (no machine online).
func BenchmarkConsoleChange(b *testing.B) {
	c := benchConsole(b, 10_000)
	t := &wire.Technician{Name: "alice", Clients: []string{"acme"}}
	for _, streams := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
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
	c := benchConsole(b, 10_000)
	t := &wire.Technician{Name: "alice", Clients: []string{"acme"}}
	for _, streams := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			last := make([]map[string]string, streams)
			view := func(seen map[string]string) {
				res, werr := c.deps.Ops.Do(context.Background(), t, "", wire.OpMachines, wire.MachinesArgs{})
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

// fleetOps answers the operations a fleet view runs from a real store:
// the machine cards by package readiness, the queue from stored jobs, and
// no alerts.
type fleetOps struct {
	st     *store.Store
	policy readiness.Policy
}

func (o *fleetOps) Do(_ context.Context, t *wire.Technician, _ peer.ID, op string, args any) (any, *wire.Error) {
	switch op {
	case wire.OpMachines:
		a, _ := args.(wire.MachinesArgs)
		offline := func(m *store.Machine) wire.Reachability { return wire.Reachability{LastSeen: m.LastSeen} }
		vis := func(c string) bool { return scope.Visible(t, c) }
		return readiness.Query(o.st.Machines(), offline, vis, a, time.Now(), o.policy), nil
	case wire.OpQueueList:
		js, err := o.st.Jobs(func(j *store.JobRecord) bool { return scope.Visible(t, j.Client) })
		if err != nil {
			return nil, wire.Errorf(wire.CodeInternal, "%v", err)
		}
		out := []wire.Job{}
		for _, j := range js {
			out = append(out, j.Summary())
		}
		return out, nil
	case wire.OpAlerts:
		return []wire.Alert{}, nil
	}
	return nil, wire.Errorf(wire.CodeBadRequest, "unknown operation %q", op)
}

// benchStore is a real store holding n machines, made once per size and
// process.
var benchStores sync.Map // n → *store.Store

func benchConsole(b *testing.B, n int) *Console {
	v, ok := benchStores.Load(n)
	if !ok {
		st, err := store.Open(store.Config{Path: filepath.Join(b.TempDir(), "bench.db"), Broker: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if err := fleettest.Seed(st, "acme", n); err != nil {
			b.Fatal(err)
		}
		v, _ = benchStores.LoadOrStore(n, st)
	}
	st := v.(*store.Store)
	return New(Config{Name: "bench"}, Deps{Ops: &fleetOps{st: st, policy: readiness.DefaultPolicy()}, Store: st, Changes: NewChanges()})
}
