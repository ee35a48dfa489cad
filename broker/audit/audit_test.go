package audit_test

import (
	"slices"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// newLog returns a Log on a real store in a temporary directory, whose
// clock reads t0.
func newLog(t *testing.T) (*audit.Log, *store.Store) {
	t.Helper()
	st := fleettest.Open(t)
	return audit.New(st, nil, func() time.Time { return t0 }), st
}

// sessions lists the entries' sessions, or their events for entries
// without one, in order.
func sessions(es []wire.AuditEntry) []string {
	out := []string{}
	for _, e := range es {
		if e.Session != "" {
			out = append(out, e.Session)
		} else {
			out = append(out, e.Event)
		}
	}
	return out
}

func TestQuery(t *testing.T) {
	l, _ := newLog(t)
	for _, e := range []wire.AuditEntry{
		{Event: wire.AuditGranted, Session: "aaaa1111", Machine: "acme/web"},
		{Event: wire.AuditRefused, Session: "aaaa2222", Machine: "acme/db"},
		{Event: wire.AuditGranted, Session: "bbbb1111", Machine: "beta/web"},
		{Event: "console.signin", Technician: "alice"}, // no machine
		{Event: wire.AuditEnded, Session: "cccc1111", Machine: "acme/webfront"},
	} {
		l.Add(e)
	}
	alice := &wire.Technician{Name: "alice", Clients: []string{"acme"}}
	star := &wire.Technician{Name: "star", Clients: []string{"*"}}
	admin := &wire.Technician{Name: "admin", Admin: true}
	tests := []struct {
		desc string
		tech *wire.Technician
		args wire.AuditArgs
		want []string // newest first
	}{
		{"admin sees all", admin, wire.AuditArgs{}, []string{"cccc1111", "console.signin", "bbbb1111", "aaaa2222", "aaaa1111"}},
		{"scope keeps its clients' machines", alice, wire.AuditArgs{}, []string{"cccc1111", "aaaa2222", "aaaa1111"}},
		{"star sees every machine's, not the rest", star, wire.AuditArgs{}, []string{"cccc1111", "bbbb1111", "aaaa2222", "aaaa1111"}},
		{"bare machine name within the scope", alice, wire.AuditArgs{Machine: "web"}, []string{"aaaa1111"}},
		{"bare machine name, every client", admin, wire.AuditArgs{Machine: "web"}, []string{"bbbb1111", "aaaa1111"}},
		{"client/name", admin, wire.AuditArgs{Machine: "beta/web"}, []string{"bbbb1111"}},
		{"client/name outside the scope", alice, wire.AuditArgs{Machine: "beta/web"}, []string{}},
		{"a name's tail is not the name", admin, wire.AuditArgs{Machine: "eb"}, []string{}},
		{"session prefix", admin, wire.AuditArgs{Session: "aaaa"}, []string{"aaaa2222", "aaaa1111"}},
		{"session prefix outside the scope", alice, wire.AuditArgs{Session: "bbbb"}, []string{}},
		{"machine and session", admin, wire.AuditArgs{Machine: "web", Session: "bbbb"}, []string{"bbbb1111"}},
		{"limit", admin, wire.AuditArgs{Limit: 2}, []string{"cccc1111", "console.signin"}},
		{"limit counts kept entries", alice, wire.AuditArgs{Limit: 2}, []string{"cccc1111", "aaaa2222"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			es, werr := l.Query(tc.tech, &tc.args)
			if werr != nil {
				t.Fatal(werr)
			}
			if got := sessions(es); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestQueryDefaultLimit: with no limit a query returns the newest 100.
func TestQueryDefaultLimit(t *testing.T) {
	l, _ := newLog(t)
	for range 105 {
		l.Add(wire.AuditEntry{Event: wire.AuditGranted, Machine: "acme/web"})
	}
	admin := &wire.Technician{Name: "admin", Admin: true}
	args := wire.AuditArgs{}
	es, werr := l.Query(admin, &args)
	if werr != nil {
		t.Fatal(werr)
	}
	if len(es) != 100 || es[0].Seq != 105 || es[99].Seq != 6 {
		t.Errorf("%d entries, seq %d…%d; want 100, 105…6", len(es), es[0].Seq, es[len(es)-1].Seq)
	}
}

// TestAddStamps: an entry without a time is stamped with the Log's clock
// in UTC; one with a time keeps it.
func TestAddStamps(t *testing.T) {
	l, st := newLog(t)
	own := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l.Add(wire.AuditEntry{Event: wire.AuditGranted, Session: "stamped"})
	l.Add(wire.AuditEntry{Event: wire.AuditGranted, Session: "own", At: own})
	es, err := st.AuditLog(10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || !es[0].At.Equal(own) || !es[1].At.Equal(t0) || es[1].At.Location() != time.UTC {
		t.Errorf("entries %+v; want own time kept and the other stamped %v", es, t0)
	}
}
