package readiness

import (
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

func TestBaseline(t *testing.T) {
	ms := []store.Machine{
		{Client: "acme", AgentVersion: "0.1.0"},
		{Client: "globex", AgentVersion: "99.0.0"},
		{Client: "acme", AgentVersion: "0.1.0"},
		{Client: "initech", AgentVersion: "dev"},
		{Client: "initech", AgentVersion: "0.3.0"},
		{Client: "hooli"},
	}
	tests := []struct {
		name   string
		p      Policy
		client string
		want   string
	}{
		{"own client's newest", Policy{}, "acme", "0.1.0"},
		{"another client's own", Policy{}, "globex", "99.0.0"},
		{"unparsable ignored within a client", Policy{}, "initech", "0.3.0"},
		{"no version reported", Policy{}, "hooli", ""},
		{"client with no machines", Policy{}, "umbrella", ""},
		{"pin applies to every client", Policy{AgentVersion: "1.0.0"}, "acme", "1.0.0"},
		{"pin below a client's newest", Policy{AgentVersion: "1.0.0"}, "globex", "1.0.0"},
		{"pin for a client with no machines", Policy{AgentVersion: "1.0.0"}, "umbrella", "1.0.0"},
	}
	for _, tt := range tests {
		if got := tt.p.Baseline(ms).For(tt.client); got != tt.want {
			t.Errorf("%s: Baseline.For(%q) = %q, want %q", tt.name, tt.client, got, tt.want)
		}
		if got := tt.p.NewestOf(ms, tt.client); got != tt.want {
			t.Errorf("%s: NewestOf(%q) = %q, want %q", tt.name, tt.client, got, tt.want)
		}
	}
	if got := (Baseline{}).For("acme"); got != "" {
		t.Errorf("zero Baseline judges acme against %q, want nothing", got)
	}
}

// realFleet is a real store holding acme's two machines on agent 0.1.0
// and globex's machine on 99.0.0, each checked in once.
func realFleet(t *testing.T) *store.Store {
	st := fleettest.Open(t)
	at := time.Now()
	for _, m := range []struct{ id, client, version string }{
		{"acme-1", "acme", "0.1.0"}, {"acme-2", "acme", "0.1.0"}, {"globex-1", "globex", "99.0.0"},
	} {
		fleettest.Enrol(t, st, m.id, m.client, m.id, at)
		checkInVersion(t, st, m.id, 1, m.version)
	}
	return st
}

// checkInVersion commits check-in seq of id with agent version v.
func checkInVersion(t *testing.T, st *store.Store, id string, seq uint64, v string) {
	t.Helper()
	snap := fleettest.Snapshot(id)
	snap.AgentVersion = v
	ci := &wire.CheckIn{MachineID: id, Seq: seq, Reason: wire.ReasonInterval, Snapshot: snap}
	if _, err := st.CheckIn(ci, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// behindOf maps the IDs of the cards in Query's listing to the version
// they were judged against, with a "<" prefix for those behind it.
func behindOf(st *store.Store, visible func(string) bool, p Policy) map[string]string {
	out := map[string]string{}
	for _, c := range Query(st.Machines(), nil, visible, wire.MachinesArgs{}, time.Now(), p) {
		v := c.Readiness.NewestAgentVersion
		if c.Readiness.AgentBehind {
			v = "<" + v
		}
		out[c.ID] = v
	}
	return out
}

// TestQueryPerClientOnStore runs Query on a real store: globex's agent on
// 99.0.0 does not put acme's 0.1.0 machines behind, whoever asks; a newer
// acme agent does; and the pinned version applies to every client.
func TestQueryPerClientOnStore(t *testing.T) {
	st := realFleet(t)
	all := func(string) bool { return true }
	acme := func(c string) bool { return c == "acme" }
	check := func(what string, got, want map[string]string) {
		t.Helper()
		for id, w := range want {
			if got[id] != w {
				t.Errorf("%s: %s judged %q, want %q (all: %v)", what, id, got[id], w, got)
			}
		}
	}
	check("admin", behindOf(st, all, Policy{}), map[string]string{"acme-1": "0.1.0", "acme-2": "0.1.0", "globex-1": "99.0.0"})
	check("acme's technician", behindOf(st, acme, Policy{}), map[string]string{"acme-1": "0.1.0", "acme-2": "0.1.0"})

	check("pinned", behindOf(st, all, Policy{AgentVersion: "1.0.0"}),
		map[string]string{"acme-1": "<1.0.0", "acme-2": "<1.0.0", "globex-1": "1.0.0"})

	checkInVersion(t, st, "acme-2", 2, "0.2.0")
	check("after acme-2 upgraded", behindOf(st, all, Policy{}), map[string]string{"acme-1": "<0.2.0", "acme-2": "0.2.0", "globex-1": "99.0.0"})
	for _, c := range Query(st.Machines(), nil, acme, wire.MachinesArgs{}, time.Now(), Policy{}) {
		if c.ID == "acme-1" && (c.Readiness.State != wire.StateDegraded || !strings.Contains(strings.Join(c.Readiness.Reasons, "; "), "agent 0.1.0 is behind 0.2.0")) {
			t.Errorf("acme-1 behind acme's 0.2.0: state %s, reasons %q", c.Readiness.State, c.Readiness.Reasons)
		}
	}
}
