package store

import (
	"testing"
	"time"
)

// A policy set for a machine by a broker that has not heard of its
// removal, with a later clock than the removal's, does not come alive
// where the removal is stored: whichever way two brokers exchange first,
// neither holds the policy at any point and both end with the same
// records. Where the broker that set it is gone before the removal
// reaches it, the brokers that hold the removal still leave it out.
func TestImportPolicyOfRemovedMachine(t *testing.T) {
	setup := func(t *testing.T) (east, west *broker) {
		east, west = newBroker(t, "east", 0), newBroker(t, "west", 0)
		seedFleet(t, east.Store, []string{"m1", "m2"}, 1)
		mustSetPolicy(t, east.Store, ClientScope("acme"), quiet6h)
		converge(t, east.Store, west.Store)
		if _, err := east.at(time.Minute).RemoveMachine("m1", "alice", t0); err != nil {
			t.Fatal(err)
		}
		mustSetPolicy(t, west.at(2*time.Minute), MachineScope("m1"), normal)
		return east, west
	}
	for _, tc := range []struct {
		name      string
		eastFirst bool
	}{{"the removed side pulls first", true}, {"the setting side pulls first", false}} {
		t.Run(tc.name, func(t *testing.T) {
			east, west := setup(t)
			exchangeEitherWay(t, east, west, tc.eastFirst, "removal")
		})
	}
	t.Run("the setting side is gone", func(t *testing.T) {
		east, west := setup(t)
		north := newBroker(t, "north", 0)
		converge(t, east.Store, north.at(2*time.Minute))
		res := mustImport(t, east.at(2*time.Minute), exportOne(t, west.Store, Key{KindPolicy, "machine:m1"}))
		if res.Applied != 0 {
			t.Errorf("east applied %d records, want none", res.Applied)
		}
		converge(t, east.Store, north.Store)
		assertConverged(t, east.Store, north.Store)
		assertPolicies(t, "east", east.Store, "client:acme")
		assertPolicies(t, "north", north.Store, "client:acme")
		east.reopen(t)
		assertPolicies(t, "east after reopen", east.Store, "client:acme")
	})
}

// A client's policy set by a broker that has not heard that the client
// was deleted, with a later clock than the deletion's, does not come
// alive where the deletion is stored; where the policy is stored, the
// client's tombstone clears it when it arrives, whether the client's
// record was there or not. Either way round the brokers agree, with no
// policy for the client.
func TestImportPolicyOfDeletedClient(t *testing.T) {
	setup := func(t *testing.T) (east, west *broker) {
		east, west = newBroker(t, "east", 0), newBroker(t, "west", 0)
		mustClient(t, east.Store, "acme")
		mustClient(t, east.Store, "globex")
		mustSetPolicy(t, east.Store, ClientScope("acme"), quiet6h)
		converge(t, east.Store, west.Store)
		if _, _, err := east.at(time.Minute).RemoveClient("globex", false, "alice", t0); err != nil {
			t.Fatal(err)
		}
		mustSetPolicy(t, west.at(2*time.Minute), ClientScope("globex"), quiet)
		return east, west
	}
	for _, tc := range []struct {
		name      string
		eastFirst bool
	}{{"the deleting side pulls first", true}, {"the setting side pulls first", false}} {
		t.Run(tc.name, func(t *testing.T) {
			east, west := setup(t)
			exchangeEitherWay(t, east, west, tc.eastFirst, "deletion")
			west.reopen(t)
			assertPolicies(t, "west after reopen", west.Store, "client:acme")
		})
	}
	t.Run("the setting side is gone", func(t *testing.T) {
		east, west := setup(t)
		north := newBroker(t, "north", 0)
		converge(t, east.Store, north.at(2*time.Minute))
		mustImport(t, east.at(2*time.Minute), exportOne(t, west.Store, Key{KindPolicy, "client:globex"}))
		converge(t, east.Store, north.Store)
		assertConverged(t, east.Store, north.Store)
		assertPolicies(t, "east", east.Store, "client:acme")
		assertPolicies(t, "north", north.Store, "client:acme")
	})
	t.Run("the policy came without its client", func(t *testing.T) {
		east, west := setup(t)
		partial := newBroker(t, "partial", 0)
		mustImport(t, partial.at(2*time.Minute), exportOne(t, west.Store, Key{KindPolicy, "client:globex"}))
		assertPolicies(t, "partial before", partial.Store, "client:globex")
		mustImport(t, partial.Store, exportOne(t, east.Store, Key{KindClient, "globex"}))
		assertPolicies(t, "partial after the tombstone", partial.Store)
		converge(t, west.Store, partial.Store)
		converge(t, east.Store, partial.Store)
		converge(t, east.Store, west.Store)
		assertConverged(t, east.Store, partial.Store)
		assertConverged(t, east.Store, west.Store)
		assertPolicies(t, "partial converged", partial.Store, "client:acme")
	})
}

// A client created again takes a policy again: one that reaches a broker
// still holding the old client's tombstone is left out there only until
// the new client's record arrives, and the brokers end with the policy.
// A policy that arrives before its client, never deleted, is kept.
func TestImportPolicyOfClientCreatedAgain(t *testing.T) {
	east, west := newBroker(t, "east", 0), newBroker(t, "west", 0)
	mustClient(t, east.Store, "globex")
	mustSetPolicy(t, east.Store, ClientScope("globex"), normal)
	converge(t, east.Store, west.Store)
	if _, _, err := east.at(time.Minute).RemoveClient("globex", false, "alice", t0); err != nil {
		t.Fatal(err)
	}
	converge(t, east.Store, west.Store)
	mustClient(t, west.at(2*time.Minute), "globex")
	mustSetPolicy(t, west.at(3*time.Minute), ClientScope("globex"), quiet)

	mustImport(t, east.at(3*time.Minute), exportOne(t, west.Store, Key{KindPolicy, "client:globex"}))
	assertPolicies(t, "east before the new client", east.Store)
	converge(t, east.Store, west.Store)
	assertConverged(t, east.Store, west.Store)
	for _, b := range []*broker{east, west} {
		if p, ok := b.Policy(ClientScope("globex")); !ok || p.Agent() != quiet {
			t.Errorf("%s: the new globex's policy %+v, %v; want %+v", b.cfg.Broker, p.Agent(), ok, quiet)
		}
	}

	fresh := newBroker(t, "fresh", 0)
	mustImport(t, fresh.at(3*time.Minute), exportOne(t, west.Store, Key{KindPolicy, "client:globex"}))
	mustImport(t, fresh.Store, exportOne(t, west.Store, Key{KindClient, "globex"}))
	assertPolicies(t, "fresh", fresh.Store, "client:globex")
}

// exchangeEitherWay lets east and west pull from each other, east first or
// west first, and checks after each step and once converged that only
// acme's client policy is in force on both: the removal (or deletion,
// what) east made wins over the policy west set.
func exchangeEitherWay(t *testing.T, east, west *broker, eastFirst bool, what string) {
	t.Helper()
	if eastFirst {
		pull(t, east.Store, west.Store)
		assertPolicies(t, "east after pulling the policy", east.Store, "client:acme")
		pull(t, west.Store, east.Store)
	} else {
		pull(t, west.Store, east.Store)
		assertPolicies(t, "west after pulling the "+what, west.Store, "client:acme")
		pull(t, east.Store, west.Store)
	}
	assertPolicies(t, "east", east.Store, "client:acme")
	assertPolicies(t, "west", west.Store, "client:acme")
	converge(t, east.Store, west.Store)
	assertConverged(t, east.Store, west.Store)
	assertPolicies(t, "east converged", east.Store, "client:acme")
}
