package readiness

import (
	"testing"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestEachStateMatchesQuery: the state EachState gives every machine is
// the one its card carries in a listing, for a generated fleet of many
// clients (per-client versions), with and without a pinned version.
func TestEachStateMatchesQuery(t *testing.T) {
	f := genFleet(5000, 3)
	for _, p := range []Policy{{}, {AgentVersion: "1.4.0"}} {
		want := map[string]string{}
		for _, c := range Query(f.machines, f.reachOf, f.visible, wire.MachinesArgs{}, now, p) {
			want[c.ID] = c.Readiness.State
		}
		seen := map[string]int{}
		EachState(f.machines, now, p, func(m *store.Machine, state string) {
			if state != want[m.ID] {
				t.Errorf("pin %q: %s: EachState says %q, the card %q", p.AgentVersion, m.ID, state, want[m.ID])
			}
			seen[state]++
		})
		for _, s := range States() {
			if seen[s] == 0 {
				t.Errorf("pin %q: no machine of the generated fleet is %s; the test covers less than it claims", p.AgentVersion, s)
			}
		}
		t.Logf("pin %q: %v", p.AgentVersion, seen)
	}
}

// TestStatesAreTheWireStates: the label set is the five wire states, in
// queue order.
func TestStatesAreTheWireStates(t *testing.T) {
	want := []string{wire.StateReady, wire.StateDegraded, wire.StateConsentRequired, wire.StateStale, wire.StateIncomplete}
	got := States()
	if len(got) != len(want) {
		t.Fatalf("States() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("States() = %v, want %v", got, want)
		}
	}
	got[0] = "changed"
	if States()[0] != wire.StateReady {
		t.Error("States() returns the package's own array")
	}
}
