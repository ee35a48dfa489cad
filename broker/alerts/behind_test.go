package alerts_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// versionFleet is a real store holding acme's two machines on agent 0.1.0
// and globex's two on 99.0.0 and 98.0.0, each checked in once just now.
func versionFleet(t *testing.T) *store.Store {
	st := fleettest.Open(t)
	for _, m := range []struct{ id, client, version string }{
		{"acme-1", "acme", "0.1.0"}, {"acme-2", "acme", "0.1.0"},
		{"globex-1", "globex", "99.0.0"}, {"globex-2", "globex", "98.0.0"},
	} {
		fleettest.Enrol(t, st, m.id, m.client, m.id, time.Now())
		checkInVersion(t, st, m.id, 1, m.version)
	}
	return st
}

// checkInVersion commits check-in seq of id, now, with agent version v.
func checkInVersion(t *testing.T, st *store.Store, id string, seq uint64, v string) {
	t.Helper()
	snap := fleettest.Snapshot(id)
	snap.AgentVersion = v
	ci := &wire.CheckIn{MachineID: id, Seq: seq, Reason: wire.ReasonInterval, Snapshot: snap}
	if _, err := st.CheckIn(ci, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// behind evaluates the alerts of st's machines now and returns the
// details of the agent-behind alerts, by machine.
func behind(st *store.Store, p readiness.Policy) map[string]string {
	c := &alerts.Config{Offline: 15 * time.Minute, OverdueIntervals: 3, NeverCheckedIn: time.Hour, Policy: p.Resolved()}
	out := map[string]string{}
	for _, a := range alerts.Evaluate(st.Machines(), offline{}.Reach, nil, time.Now(), c) {
		if a.Kind == wire.AlertAgentBehind {
			out[a.Machine] = a.Detail
		}
	}
	return out
}

// TestAgentBehindPerClient: on a real store, globex's agent on 99.0.0
// opens no agent-behind alert for acme's machines on 0.1.0, while
// globex's own older agent gets one; a newer acme agent opens one for
// acme; and a pinned version applies to every client.
func TestAgentBehindPerClient(t *testing.T) {
	st := versionFleet(t)
	tests := []struct {
		name    string
		upgrade string // acme-2's agent version, if it checks in again
		policy  readiness.Policy
		want    map[string]string
	}{
		{"newest per client", "", readiness.Policy{},
			map[string]string{"globex/globex-2": "agent 98.0.0 is behind 99.0.0"}},
		{"pinned", "", readiness.Policy{AgentVersion: "1.0.0"},
			map[string]string{"acme/acme-1": "agent 0.1.0 is behind 1.0.0", "acme/acme-2": "agent 0.1.0 is behind 1.0.0"}},
		{"a newer acme agent", "0.2.0", readiness.Policy{},
			map[string]string{"acme/acme-1": "agent 0.1.0 is behind 0.2.0", "globex/globex-2": "agent 98.0.0 is behind 99.0.0"}},
	}
	for _, tt := range tests {
		if tt.upgrade != "" {
			checkInVersion(t, st, "acme-2", 2, tt.upgrade)
		}
		if got := behind(st, tt.policy); !maps.Equal(got, tt.want) {
			t.Errorf("%s: agent-behind alerts\n got %v\nwant %v", tt.name, got, tt.want)
		}
	}
}

// TestAgentBehindListedPerClient: the alerts a broker keeps, on a real
// store, as acme's technician lists them: none while only globex runs a
// newer agent; acme-1's once acme-2 is upgraded.
func TestAgentBehindListedPerClient(t *testing.T) {
	st := versionFleet(t)
	a := alerts.New(alerts.Config{Every: 5 * time.Millisecond}, st, offline{}, nil)
	run(t, a)
	tech := &wire.Technician{Name: "alice", Clients: []string{"acme"}}
	listed := func() []string {
		var out []string
		for _, al := range a.List(tech) {
			out = append(out, al.Machine+" "+al.Kind)
		}
		return out
	}
	admin := &wire.Technician{Admin: true}
	waitFor(t, "globex's alert", func() bool { return len(a.List(admin)) > 0 })
	if got := listed(); len(got) != 0 {
		t.Errorf("acme's technician lists %v while acme's agents are all on acme's newest", got)
	}
	checkInVersion(t, st, "acme-2", 2, "0.2.0")
	want := []string{"acme/acme-1 " + wire.AlertAgentBehind}
	waitFor(t, "acme-1's alert", func() bool { return slices.Equal(listed(), want) })
}
