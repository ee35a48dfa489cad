package store

import (
	"slices"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// scopes lists the scopes of the policies a store has set.
func scopes(s *Store) []string {
	var out []string
	for _, p := range s.Policies() {
		out = append(out, p.Scope)
	}
	return out
}

// assertPolicies fails unless exactly the policies of want are set on s.
func assertPolicies(tb testing.TB, name string, s *Store, want ...string) {
	tb.Helper()
	if got := scopes(s); !slices.Equal(got, want) {
		tb.Errorf("%s: policies %q, want %q", name, got, want)
	}
}

// Removing a machine clears its own policy, and only its own, on the
// broker that removed it; a broker that imports the removal alone (the
// tombstone not yet there) clears it too, as does one that held the
// policy without the machine; all agree once converged, and after a
// restart.
func TestRemoveMachineClearsPolicy(t *testing.T) {
	east, west := newBroker(t, "east", 0), newBroker(t, "west", 0)
	seedFleet(t, east.Store, []string{"m1", "m2"}, 1)
	mustSetPolicy(t, east.Store, ClientScope("acme"), quiet6h)
	mustSetPolicy(t, east.Store, MachineScope("m1"), normal)
	mustSetPolicy(t, east.Store, MachineScope("m2"), quiet)
	converge(t, east.Store, west.Store)
	// partial holds m1's policy but has never heard of m1.
	partial := newBroker(t, "partial", 0)
	mustImport(t, partial.Store, exportOne(t, east.Store, Key{KindPolicy, "machine:m1"}))
	assertPolicies(t, "partial before", partial.Store, "machine:m1")

	if _, err := east.at(time.Minute).RemoveMachine("m1", "alice", t0); err != nil {
		t.Fatal(err)
	}
	assertPolicies(t, "east", east.Store, "client:acme", "machine:m2")
	if _, found := east.idx.get(Key{KindPolicy, "machine:m1"}); !found {
		t.Error("east: no tombstone of m1's policy in the digest")
	}
	if p := agentPolicy(t, east.Store, "m2"); p != quiet {
		t.Errorf("east: m2 %+v, want its own %+v", p, quiet)
	}

	removal := exportOne(t, east.Store, Key{KindRemoval, "m1"})
	for _, b := range []*broker{west, partial} {
		mustImport(t, b.Store, removal)
	}
	assertPolicies(t, "west after the removal alone", west.Store, "client:acme", "machine:m2")
	assertPolicies(t, "partial after the removal alone", partial.Store)

	converge(t, east.Store, west.Store)
	converge(t, east.Store, partial.Store)
	assertConverged(t, east.Store, west.Store)
	assertConverged(t, east.Store, partial.Store)
	west.reopen(t)
	assertPolicies(t, "west after reopen", west.Store, "client:acme", "machine:m2")
	if p := agentPolicy(t, west.Store, "m2"); p != quiet {
		t.Errorf("west: m2 %+v, want its own %+v", p, quiet)
	}
}

// Removing a client clears its policy and its machines', reports their
// keys with the others it wrote, and writes no tombstone where no policy
// was set. Those keys alone carry the clearing to another broker, and a
// client created again with the same name, on either broker, starts
// without a policy.
func TestRemoveClientClearsPolicies(t *testing.T) {
	east, west := newBroker(t, "east", 0), newBroker(t, "west", 0)
	seedFleet(t, east.Store, []string{"m1", "m2"}, 1)
	mustClient(t, east.Store, "globex")
	mustSetPolicy(t, east.Store, ClientScope("acme"), quiet6h)
	mustSetPolicy(t, east.Store, ClientScope("globex"), quiet)
	mustSetPolicy(t, east.Store, MachineScope("m1"), normal)
	converge(t, east.Store, west.Store)

	ids, wrote, err := east.at(time.Minute).RemoveClient("acme", true, "alice", t0)
	if err != nil || len(ids) != 2 {
		t.Fatalf("RemoveClient = %v, %v", ids, err)
	}
	for _, k := range []Key{{KindPolicy, "client:acme"}, {KindPolicy, "machine:m1"}} {
		if !slices.Contains(wrote, k) {
			t.Errorf("wrote %v lacks %s", wrote, k)
		}
	}
	if slices.Contains(wrote, Key{KindPolicy, "machine:m2"}) {
		t.Errorf("wrote %v names m2's policy, which was never set", wrote)
	}
	if _, found := east.idx.get(Key{KindPolicy, "machine:m2"}); found {
		t.Error("east: a tombstone for m2's policy, which was never set")
	}
	assertPolicies(t, "east", east.Store, "client:globex")

	// What the removal reports is what replicates at once.
	recs, err := east.Export(wrote)
	if err != nil || len(recs) != len(wrote) {
		t.Fatalf("Export(wrote) = %d records of %d, %v", len(recs), len(wrote), err)
	}
	mustImport(t, west.Store, recs...)
	assertPolicies(t, "west", west.Store, "client:globex")
	converge(t, east.Store, west.Store)
	assertConverged(t, east.Store, west.Store)

	// The name again, on each broker: no policy comes back with it.
	mustClient(t, west.at(2*time.Minute), "acme")
	hash := mustToken(t, west.Store, "acme", 1, brokerStart.Add(time.Hour))
	mustEnroll(t, west.Store, hash, "m3", "pc")
	if p := agentPolicy(t, west.Store, "m3"); p != (wire.AgentPolicy{}) {
		t.Errorf("west: m3 in the new acme has policy %+v", p)
	}
	converge(t, east.Store, west.Store)
	assertConverged(t, east.Store, west.Store)
	for _, b := range []*broker{east, west} {
		if _, ok := b.Policy(ClientScope("acme")); ok {
			t.Errorf("%s: the new acme has the old one's policy", b.cfg.Broker)
		}
		if p := agentPolicy(t, b.Store, "m3"); p != (wire.AgentPolicy{}) {
			t.Errorf("%s: m3 has policy %+v", b.cfg.Broker, p)
		}
	}
	east.reopen(t)
	assertPolicies(t, "east after reopen", east.Store, "client:globex")
}
