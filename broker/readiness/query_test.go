package readiness

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// smallFleet: two clients, one machine per state, some online.
func smallFleet() ([]store.Machine, map[string]bool) {
	mk := func(id, client, name string, edit func(*store.Machine)) store.Machine {
		m := readyMachine()
		m.ID, m.Client, m.Name = id, client, name
		edit(&m)
		return m
	}
	ms := []store.Machine{
		mk("a-stale", "acme", "s", func(m *store.Machine) { m.LastCheckIn.At = now.Add(-day) }),
		mk("a-ready-off", "acme", "r", func(*store.Machine) {}),
		mk("b-ready", "beta", "r", func(*store.Machine) {}),
		mk("a-new", "acme", "n", func(m *store.Machine) { m.LastCheckIn, m.OS, m.AgentVersion = nil, nil, "" }),
		mk("a-behind", "acme", "b", func(m *store.Machine) {
			m.AgentVersion = "1.3.0"
			m.PendingUpdates = []wire.PendingUpdate{{ID: "openssl"}}
		}),
		mk("a-consent", "acme", "c", func(m *store.Machine) { m.Approval.Required = true }),
		mk("a-ready-on", "acme", "r", func(*store.Machine) {}),
		mk("b-dev", "beta", "d", func(m *store.Machine) { m.AgentVersion = "dev" }),
	}
	online := map[string]bool{"a-ready-on": true, "a-consent": true, "b-ready": true}
	return ms, online
}

func TestQuery(t *testing.T) {
	ms, online := smallFleet()
	reach := func(m *store.Machine) wire.Reachability { return wire.Reachability{Online: online[m.ID]} }
	all := func(string) bool { return true }
	acmeOnly := func(c string) bool { return c == "acme" }
	yes, no := true, false
	tests := []struct {
		name    string
		reach   func(*store.Machine) wire.Reachability
		visible func(string) bool
		args    wire.MachinesArgs
		want    []string
	}{
		{"everything", reach, all, wire.MachinesArgs{},
			[]string{"a-ready-on", "b-ready", "a-ready-off", "b-dev", "a-behind", "a-consent", "a-stale", "a-new"}},
		{"scope", reach, acmeOnly, wire.MachinesArgs{},
			[]string{"a-ready-on", "a-ready-off", "a-behind", "a-consent", "a-stale", "a-new"}},
		{"client outside scope", reach, acmeOnly, wire.MachinesArgs{Client: "beta"}, []string{}},
		{"client", reach, all, wire.MachinesArgs{Client: "beta"}, []string{"b-ready", "b-dev"}},
		{"state", reach, all, wire.MachinesArgs{Readiness: wire.StateReady}, []string{"a-ready-on", "b-ready", "a-ready-off", "b-dev"}},
		{"unknown state", reach, all, wire.MachinesArgs{Readiness: "bogus"}, []string{}},
		{"online", reach, all, wire.MachinesArgs{Online: &yes}, []string{"a-ready-on", "b-ready", "a-consent"}},
		{"offline in scope", reach, acmeOnly, wire.MachinesArgs{Online: &no, Readiness: wire.StateReady}, []string{"a-ready-off"}},
		{"pending update", reach, all, wire.MachinesArgs{PendingUpdate: "OPENSSL"}, []string{"a-behind"}},
		{"nil reach is offline", nil, all, wire.MachinesArgs{Online: &yes}, []string{}},
		{"nil visible shows nothing", reach, nil, wire.MachinesArgs{}, []string{}},
	}
	for _, workers := range []int{1, 3, 20} { // 20: more workers than machines
		withWorkers(t, workers)
		for _, tt := range tests {
			cards := Query(ms, tt.reach, tt.visible, tt.args, now, Policy{})
			if cards == nil {
				t.Fatalf("%s: Query returned nil, want an empty list", tt.name)
			}
			if got := ids(cards); !slices.Equal(got, tt.want) {
				t.Errorf("%s, %d workers:\ngot  %q\nwant %q", tt.name, workers, got, tt.want)
			}
		}
	}
}

// TestQueryNewestPerClient: a newer agent of another client, even one
// outside the technician's scope, does not mark a machine behind; a newer
// agent of its own client does, and readiness does not depend on who asks.
func TestQueryNewestPerClient(t *testing.T) {
	ms, _ := smallFleet()
	ms[2].AgentVersion = "1.5.0" // b-ready, client beta
	for _, visible := range []func(string) bool{func(c string) bool { return c == "acme" }, func(string) bool { return true }} {
		cards := Query(ms, nil, visible, wire.MachinesArgs{Client: "acme", Readiness: wire.StateReady}, now, Policy{})
		if got := ids(cards); !slices.Equal(got, []string{"a-ready-off", "a-ready-on"}) {
			t.Errorf("acme's ready machines on 1.4.0 = %q; beta's 1.5.0 must not mark them behind", got)
		}
		for _, c := range cards {
			if c.Readiness.NewestAgentVersion != "1.4.0" || c.Readiness.AgentBehind {
				t.Errorf("%s: newest %q, behind %v; want acme's 1.4.0, not behind", c.ID, c.Readiness.NewestAgentVersion, c.Readiness.AgentBehind)
			}
		}
	}
	ms[0].AgentVersion = "1.6.0" // a-stale, client acme
	cards := Query(ms, nil, func(c string) bool { return c == "acme" }, wire.MachinesArgs{Readiness: wire.StateReady}, now, Policy{})
	if len(cards) != 0 {
		t.Errorf("acme machines on 1.4.0 should be behind acme's 1.6.0, got ready: %q", ids(cards))
	}
	for _, c := range Query(ms, nil, func(string) bool { return true }, wire.MachinesArgs{Client: "beta"}, now, Policy{}) {
		if c.Readiness.NewestAgentVersion != "1.5.0" || c.ID == "b-ready" && c.Readiness.AgentBehind {
			t.Errorf("%s: newest %q, behind %v; want beta's 1.5.0, not acme's 1.6.0", c.ID, c.Readiness.NewestAgentVersion, c.Readiness.AgentBehind)
		}
	}
}

// TestQueryEqualsPipeline checks Query against the exported pieces put
// together the obvious way, on a generated fleet and several filters.
func TestQueryEqualsPipeline(t *testing.T) {
	f := genFleet(5000, 9)
	var some []string
	for c := range f.clients {
		if len(some) < len(f.clients)/3 {
			some = append(some, c)
		}
	}
	partial := func(c string) bool { return slices.Contains(some, c) }
	yes := true
	argsList := []wire.MachinesArgs{
		{},
		{Client: some[0]},
		{Readiness: wire.StateDegraded},
		{Readiness: wire.StateStale, Online: &yes},
		{PendingUpdate: "openssl"},
	}
	// Some clients have no agent on 1.4.0: their newest is their own.
	for i := range f.machines {
		if m := &f.machines[i]; m.AgentVersion == "1.4.0" && slices.Contains(some[:len(some)/2], m.Client) {
			m.AgentVersion = "1.3.2"
		}
	}
	p := Policy{Grace: 5 * time.Minute}
	for _, workers := range []int{0, 1, 2, 3, 7} {
		withWorkers(t, workers)
		for _, visible := range []func(string) bool{f.visible, partial} {
			for _, a := range argsList {
				got := Query(f.machines, f.reachOf, visible, a, now, p)
				want := pipeline(f, visible, a, p)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%d workers, args %+v: Query differs from Card+Match+Sort (%d vs %d cards)",
						workers, a, len(got), len(want))
				}
			}
		}
	}
}

// withWorkers makes Query use n workers (0: its own choice) until the test
// ends.
func withWorkers(t *testing.T, n int) {
	old := testOnlyWorkers
	testOnlyWorkers = n
	t.Cleanup(func() { testOnlyWorkers = old })
}

func pipeline(f *fleet, visible func(string) bool, a wire.MachinesArgs, p Policy) []wire.Card {
	cards := []wire.Card{}
	for i := range f.machines {
		m := &f.machines[i]
		if !visible(m.Client) {
			continue
		}
		c := Card(m, f.reach[m.ID], p.NewestOf(f.machines, m.Client), now, p)
		if Match(&c, &a) {
			cards = append(cards, c)
		}
	}
	Sort(cards)
	return cards
}

// TestFleetMix keeps the generated fleet honest: every state occurs, about
// a fifth of machines have pending updates and about half are online.
func TestFleetMix(t *testing.T) {
	f := genFleet(20_000, 1)
	cards := Query(f.machines, f.reachOf, f.visible, wire.MachinesArgs{}, now, Policy{})
	count := map[string]int{}
	pendingN, onlineN := 0, 0
	for i := range cards {
		count[cards[i].Readiness.State]++
		if len(cards[i].Readiness.PendingUpdates) > 0 {
			pendingN++
		}
		if cards[i].Reachability.Online {
			onlineN++
		}
	}
	for _, s := range states {
		if count[s] == 0 {
			t.Errorf("no %s machines in the generated fleet", s)
		}
	}
	t.Logf("states %v, pending %d, online %d of %d", count, pendingN, onlineN, len(cards))
	if pendingN < 3600 || pendingN > 4400 || onlineN < 9500 || onlineN > 10500 {
		t.Errorf("fleet mix drifted: %d with pending updates, %d online of 20000", pendingN, onlineN)
	}
}

// TestQueryAllocs guards the per-card cost: a listing allocates a few large
// arrays plus, at most, one string per card that has reasons.
func TestQueryAllocs(t *testing.T) {
	f := genFleet(5000, 2)
	allocs := testing.AllocsPerRun(5, func() {
		Query(f.machines, f.reachOf, f.visible, wire.MachinesArgs{}, now, Policy{})
	})
	if perCard := allocs / 5000; perCard > 0.6 {
		t.Errorf("%.0f allocations for 5000 cards (%.2f a card), want at most 0.6 a card", allocs, perCard)
	}
}

// TestQueryCardsIndependent: reasons and snapshot ages are carved from
// shared blocks, but no card may reach into another's.
func TestQueryCardsIndependent(t *testing.T) {
	ms, _ := smallFleet()
	ms[0].Approval.Required = true // a-stale: two reasons
	cards := Query(ms, nil, func(string) bool { return true }, wire.MachinesArgs{}, now, Policy{})
	before := make([][]string, len(cards))
	for i := range cards {
		before[i] = slices.Clone(cards[i].Readiness.Reasons)
	}
	for i := range cards {
		cards[i].Readiness.Reasons = append(cards[i].Readiness.Reasons, "extra")
		if a := cards[i].Readiness.SnapshotAgeSec; a != nil {
			*a = -1
		}
	}
	for i := range cards {
		if got := cards[i].Readiness.Reasons; !slices.Equal(got[:len(got)-1], before[i]) {
			t.Errorf("card %s: reasons %q, were %q", cards[i].ID, got, before[i])
		}
	}
	fresh := Query(ms, nil, func(string) bool { return true }, wire.MachinesArgs{}, now, Policy{})
	for i := range fresh {
		if a := fresh[i].Readiness.SnapshotAgeSec; a != nil && *a < 0 {
			t.Errorf("card %s: snapshot age shared with an earlier listing", fresh[i].ID)
		}
	}
}
