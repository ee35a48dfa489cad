package policy_test

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/policy"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// recorder is the room's audit log and replication: it keeps what it is
// handed.
type recorder struct {
	mu      sync.Mutex
	entries []wire.AuditEntry
	keys    []store.Key
}

func (r *recorder) Add(e wire.AuditEntry) {
	r.mu.Lock()
	r.entries = append(r.entries, e)
	r.mu.Unlock()
}

func (r *recorder) Written(keys ...store.Key) {
	r.mu.Lock()
	r.keys = append(r.keys, keys...)
	r.mu.Unlock()
}

var (
	admin = &wire.Technician{Name: "admin", Admin: true}
	tina  = &wire.Technician{Name: "tina", Clients: []string{"acme"}}
)

// fleet is a store with clients acme (machines pc-1, pc-2) and globex
// (machine web), and the room on it.
func fleet(t *testing.T) (*policy.Room, *store.Store, *recorder, map[string]string) {
	t.Helper()
	st, err := store.Open(store.Config{Path: filepath.Join(t.TempDir(), "broker.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ids := map[string]string{}
	for client, names := range map[string][]string{"acme": {"pc-1", "pc-2"}, "globex": {"web"}} {
		if _, err := st.CreateClient(client, t0); err != nil {
			t.Fatal(err)
		}
		hash := wire.HashSecret(wire.NewSecret())
		if err := st.CreateToken(hash, store.Token{Client: client, Uses: 5, UsesLeft: 5, ExpiresAt: t0.Add(time.Hour),
			CreatedBy: "admin", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			id := "id-" + client + "-" + name
			if _, err := st.Enroll(store.EnrollRequest{TokenHash: hash, MachineID: id, Name: name, Now: t0}); err != nil {
				t.Fatal(err)
			}
			ids[client+"/"+name] = id
		}
	}
	rec := &recorder{}
	room := policy.New(policy.Config{Now: func() time.Time { return t0 }},
		policy.Deps{Store: st, Audit: rec, Replication: rec})
	return room, st, rec, ids
}

func inForce(t *testing.T, st *store.Store, id string) wire.AgentPolicy {
	t.Helper()
	m, ok := st.Machine(id)
	if !ok {
		t.Fatalf("no machine %s", id)
	}
	return st.AgentPolicy(&m)
}

func TestSetListClear(t *testing.T) {
	room, st, rec, ids := fleet(t)
	quiet := wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 6 * 3600}
	p, werr := room.Set(admin, &wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "acme"}, AgentPolicy: quiet})
	if werr != nil {
		t.Fatal(werr)
	}
	if p.Scope != "client:acme" || p.Client != "acme" || p.MachineID != "" || p.AgentPolicy != quiet || p.SetBy != "admin" || !p.SetAt.Equal(t0) {
		t.Errorf("set acme: %+v", p)
	}
	normal := wire.AgentPolicy{OnMetered: wire.MeteredNormal}
	p, werr = room.Set(admin, &wire.PolicyArgs{PolicyScope: wire.PolicyScope{Machine: "acme/pc-2"}, AgentPolicy: normal})
	if werr != nil {
		t.Fatal(werr)
	}
	if p.Scope != "machine:"+ids["acme/pc-2"] || p.Machine != "acme/pc-2" || p.Client != "acme" || p.Name() != "machine acme/pc-2" {
		t.Errorf("set pc-2: %+v", p)
	}
	if got := inForce(t, st, ids["acme/pc-1"]); got != quiet {
		t.Errorf("pc-1: %+v", got)
	}
	if got := inForce(t, st, ids["acme/pc-2"]); got != normal {
		t.Errorf("pc-2: %+v", got)
	}
	if _, werr := room.Set(admin, &wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "globex"}, AgentPolicy: normal}); werr != nil {
		t.Fatal(werr)
	}

	// Listing: the admin sees all three, tina acme's two.
	for _, tc := range []struct {
		who  *wire.Technician
		want []string
	}{
		{admin, []string{"client:acme", "client:globex", "machine:" + ids["acme/pc-2"]}},
		{tina, []string{"client:acme", "machine:" + ids["acme/pc-2"]}},
		{&wire.Technician{Name: "nobody"}, nil},
	} {
		ps, werr := room.List(tc.who)
		if werr != nil {
			t.Fatal(werr)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.Scope)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s lists %q, want %q", tc.who.Name, got, tc.want)
		}
	}

	old, werr := room.Clear(admin, &wire.PolicyScope{Machine: ids["acme/pc-2"]})
	if werr != nil || old.AgentPolicy != normal {
		t.Fatalf("clear pc-2 = %+v, %v", old, werr)
	}
	if got := inForce(t, st, ids["acme/pc-2"]); got != quiet {
		t.Errorf("pc-2 after its own is cleared: %+v, want acme's", got)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.keys) != 4 || rec.keys[3] != (store.Key{Kind: store.KindPolicy, ID: "machine:" + ids["acme/pc-2"]}) {
		t.Errorf("replicated %v", rec.keys)
	}
	if len(rec.entries) != 4 {
		t.Fatalf("audit entries: %+v", rec.entries)
	}
	for i, want := range []struct{ machine, detail string }{
		{"", "client acme: quiet on metered connections, checking in every 6h0m0s"},
		{"acme/pc-2", "machine acme/pc-2: normal on metered connections"},
		{"", "client globex: normal"},
		{"acme/pc-2", "machine acme/pc-2: cleared (was normal"},
	} {
		e := rec.entries[i]
		if e.Event != wire.AuditMeteredPolicy || e.Technician != "admin" || e.Machine != want.machine || !strings.Contains(e.Detail, want.detail) {
			t.Errorf("audit entry %d: %+v, want machine %q, detail %q", i, e, want.machine, want.detail)
		}
	}
}

// What a technician cannot see is not found, and a refusal writes
// nothing: no record, no audit entry, nothing replicated.
func TestRefusals(t *testing.T) {
	room, st, rec, ids := fleet(t)
	quiet := wire.AgentPolicy{OnMetered: wire.MeteredQuiet}
	tests := []struct {
		name string
		who  *wire.Technician
		run  func(who *wire.Technician) *wire.Error
		code string
		msg  string
	}{
		{"unknown client", admin, func(who *wire.Technician) *wire.Error {
			_, werr := room.Set(who, &wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "initech"}, AgentPolicy: quiet})
			return werr
		}, wire.CodeNotFound, `no client "initech"`},
		{"unknown machine", admin, func(who *wire.Technician) *wire.Error {
			_, werr := room.Set(who, &wire.PolicyArgs{PolicyScope: wire.PolicyScope{Machine: "nowhere"}, AgentPolicy: quiet})
			return werr
		}, wire.CodeNotFound, `no machine "nowhere"`},
		{"a client outside the scope", tina, func(who *wire.Technician) *wire.Error {
			_, werr := room.Set(who, &wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "globex"}, AgentPolicy: quiet})
			return werr
		}, wire.CodeNotFound, `no client "globex"`},
		{"a machine outside the scope", tina, func(who *wire.Technician) *wire.Error {
			_, werr := room.Set(who, &wire.PolicyArgs{PolicyScope: wire.PolicyScope{Machine: ids["globex/web"]}, AgentPolicy: quiet})
			return werr
		}, wire.CodeNotFound, "among the machines you can see"},
		{"a bad policy past the decoder", admin, func(who *wire.Technician) *wire.Error {
			_, werr := room.Set(who, &wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "acme"}, AgentPolicy: wire.AgentPolicy{OnMetered: "loud"}})
			return werr
		}, wire.CodeBadRequest, `"loud"`},
		{"clear with none set", admin, func(who *wire.Technician) *wire.Error {
			_, werr := room.Clear(who, &wire.PolicyScope{Machine: "acme/pc-1"})
			return werr
		}, wire.CodeNotFound, "no metered policy is set for machine acme/pc-1"},
		{"clear of an unknown machine", admin, func(who *wire.Technician) *wire.Error {
			_, werr := room.Clear(who, &wire.PolicyScope{Machine: "id-gone"})
			return werr
		}, wire.CodeNotFound, `no machine "id-gone"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			werr := tt.run(tt.who)
			if werr == nil || werr.Code != tt.code || !strings.Contains(werr.Message, tt.msg) {
				t.Fatalf("got %v, want %s saying %q", werr, tt.code, tt.msg)
			}
			if ps := st.Policies(); len(ps) != 0 {
				t.Errorf("stored %+v", ps)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.entries) != 0 || len(rec.keys) != 0 {
				t.Errorf("audited %+v, replicated %v", rec.entries, rec.keys)
			}
		})
	}
}

// A removed machine's policy goes with it (the store tombstones it in
// the removal's transaction): nobody lists it, and clearing it again is
// not found.
func TestRemovedMachinePolicy(t *testing.T) {
	room, st, _, ids := fleet(t)
	id := ids["acme/pc-1"]
	if _, werr := room.Set(admin, &wire.PolicyArgs{PolicyScope: wire.PolicyScope{Machine: id},
		AgentPolicy: wire.AgentPolicy{OnMetered: wire.MeteredQuiet}}); werr != nil {
		t.Fatal(werr)
	}
	if _, err := st.RemoveMachine(id, "admin", t0); err != nil {
		t.Fatal(err)
	}
	for _, who := range []*wire.Technician{admin, tina} {
		if ps, _ := room.List(who); len(ps) != 0 {
			t.Errorf("%s lists %+v", who.Name, ps)
		}
	}
	if _, werr := room.Clear(admin, &wire.PolicyScope{Machine: id}); werr == nil || werr.Code != wire.CodeNotFound {
		t.Errorf("admin clears a removed machine's policy: %v", werr)
	}
	if ps := st.Policies(); len(ps) != 0 {
		t.Errorf("left %+v", ps)
	}
}

func TestDescribe(t *testing.T) {
	for p, want := range map[wire.AgentPolicy]string{
		{OnMetered: wire.MeteredNormal}:                       "normal on metered connections",
		{OnMetered: wire.MeteredQuiet}:                        "quiet on metered connections, checking in at the agent's own quiet interval",
		{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 1800}: "quiet on metered connections, checking in every 30m0s",
		{}: "none (the agent's own flags)",
	} {
		if got := policy.Describe(p); got != want {
			t.Errorf("Describe(%+v) = %q, want %q", p, got, want)
		}
	}
}
