package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

var (
	quiet6h = wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 6 * 3600}
	quiet   = wire.AgentPolicy{OnMetered: wire.MeteredQuiet}
	normal  = wire.AgentPolicy{OnMetered: wire.MeteredNormal}
)

func mustSetPolicy(tb testing.TB, s *Store, scope string, p wire.AgentPolicy) PolicyRecord {
	tb.Helper()
	rec, err := s.SetPolicy(scope, p, "admin", t0)
	if err != nil {
		tb.Fatalf("SetPolicy(%s, %+v): %v", scope, p, err)
	}
	return rec
}

// agentPolicy is the policy of a stored machine.
func agentPolicy(tb testing.TB, s *Store, id string) wire.AgentPolicy {
	tb.Helper()
	m, ok := s.Machine(id)
	if !ok {
		tb.Fatalf("machine %s not stored", id)
	}
	return s.AgentPolicy(&m)
}

// A machine's own policy wins over its client's; clearing it brings the
// client's back; with neither the policy is empty. What is set survives
// a reopen.
func TestPolicyMachineOverridesClient(t *testing.T) {
	s, cfg := enrolled(t, 0, "m1", "m2")
	for _, id := range []string{"m1", "m2"} {
		if p := agentPolicy(t, s, id); p != (wire.AgentPolicy{}) {
			t.Fatalf("%s before any policy: %+v", id, p)
		}
	}
	rec := mustSetPolicy(t, s, ClientScope("acme"), quiet6h)
	if rec.Scope != "client:acme" || rec.By != "admin" || !rec.At.Equal(t0) || rec.Agent() != quiet6h {
		t.Errorf("SetPolicy returned %+v", rec)
	}
	mustSetPolicy(t, s, MachineScope("m2"), normal)
	if p := agentPolicy(t, s, "m1"); p != quiet6h {
		t.Errorf("m1 (client's policy): %+v, want %+v", p, quiet6h)
	}
	if p := agentPolicy(t, s, "m2"); p != normal {
		t.Errorf("m2 (its own policy): %+v, want %+v", p, normal)
	}
	if ps := s.Policies(); len(ps) != 2 || ps[0].Scope != "client:acme" || ps[1].Scope != "machine:m2" {
		t.Errorf("Policies = %+v", ps)
	}

	s = reopen(t, s, cfg)
	if p := agentPolicy(t, s, "m2"); p != normal {
		t.Errorf("m2 after reopen: %+v, want %+v", p, normal)
	}
	old, err := s.ClearPolicy(MachineScope("m2"))
	if err != nil || old.Agent() != normal {
		t.Fatalf("ClearPolicy(m2) = %+v, %v", old, err)
	}
	if p := agentPolicy(t, s, "m2"); p != quiet6h {
		t.Errorf("m2 once its own is cleared: %+v, want the client's %+v", p, quiet6h)
	}
	if _, err := s.ClearPolicy(ClientScope("acme")); err != nil {
		t.Fatal(err)
	}
	if p := agentPolicy(t, s, "m1"); p != (wire.AgentPolicy{}) {
		t.Errorf("m1 once acme's is cleared: %+v", p)
	}
	if ps := s.Policies(); len(ps) != 0 {
		t.Errorf("Policies after clearing both = %+v", ps)
	}
	// The tombstones stay (and replicate); reopened, they set nothing.
	s = reopen(t, s, cfg)
	if p := agentPolicy(t, s, "m2"); p != (wire.AgentPolicy{}) || len(s.Policies()) != 0 {
		t.Errorf("after reopen: m2 %+v, policies %+v", p, s.Policies())
	}
	if _, found := s.idx.get(Key{KindPolicy, "machine:m2"}); !found {
		t.Error("the tombstone of m2's policy is not in the digest")
	}
}

// Setting a policy again replaces it in the same incarnation, and only
// the newest write is in force.
func TestPolicySetAgain(t *testing.T) {
	s, _ := enrolled(t, 0, "m1")
	first := mustSetPolicy(t, s, ClientScope("acme"), quiet6h)
	second := mustSetPolicy(t, s, ClientScope("acme"), quiet)
	if second.Born != first.Born || !second.Clock.After(first.Clock) {
		t.Errorf("second write: born %v clock %v; first born %v clock %v", second.Born, second.Clock, first.Born, first.Clock)
	}
	if p := agentPolicy(t, s, "m1"); p != quiet {
		t.Errorf("m1: %+v, want %+v", p, quiet)
	}
	// Cleared and set again: a new incarnation.
	if _, err := s.ClearPolicy(ClientScope("acme")); err != nil {
		t.Fatal(err)
	}
	third := mustSetPolicy(t, s, ClientScope("acme"), normal)
	if third.Born == first.Born {
		t.Error("a policy set after a clear kept the old incarnation")
	}
}

// Bad policies are refused with a clear error and change nothing, not
// the file, not the policy in force.
func TestPolicyRefused(t *testing.T) {
	s, _ := enrolled(t, 0, "m1")
	mustSetPolicy(t, s, ClientScope("acme"), quiet6h)
	tests := []struct {
		name  string
		scope string
		p     wire.AgentPolicy
		want  error
		msg   string
	}{
		{"unknown on_metered", ClientScope("acme"), wire.AgentPolicy{OnMetered: "loud"}, ErrMalformed, `"loud" is not normal or quiet`},
		{"empty on_metered", ClientScope("acme"), wire.AgentPolicy{}, ErrMalformed, "on_metered is empty"},
		{"interval too short", ClientScope("acme"), wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 60}, ErrMalformed, "outside 15m"},
		{"interval too long", ClientScope("acme"), wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 8 * 24 * 3600}, ErrMalformed, "outside 15m"},
		{"negative interval", ClientScope("acme"), wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: -1}, ErrMalformed, "outside 15m"},
		{"interval without quiet", ClientScope("acme"), wire.AgentPolicy{OnMetered: wire.MeteredNormal, QuietCheckInSec: 3600}, ErrMalformed, "only with on_metered quiet"},
		{"unknown client", ClientScope("globex"), quiet, ErrNotFound, `client "globex"`},
		{"unknown machine", MachineScope("m9"), quiet, ErrNotFound, "machine m9"},
		{"scope of no kind", "group:acme", quiet, ErrMalformed, "not client:NAME or machine:ID"},
		{"bad client name", ClientScope("ac me"), quiet, ErrMalformed, "only letters"},
		{"bad machine ID", MachineScope("m1/x"), quiet, ErrMalformed, "only letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := capture(t, s)
			_, err := s.SetPolicy(tt.scope, tt.p, "admin", t0)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("SetPolicy(%s, %+v) = %v; want %v saying %q", tt.scope, tt.p, err, tt.want, tt.msg)
			}
			assertUnchanged(t, s, before)
			if p := agentPolicy(t, s, "m1"); p != quiet6h {
				t.Errorf("policy in force changed to %+v", p)
			}
		})
	}
	t.Run("clear of a scope with none", func(t *testing.T) {
		before := capture(t, s)
		if _, err := s.ClearPolicy(MachineScope("m1")); !errors.Is(err, ErrNotFound) {
			t.Errorf("ClearPolicy(m1) = %v, want ErrNotFound", err)
		}
		assertUnchanged(t, s, before)
	})
}

// mergePolicy is last writer wins: commutative, and a tombstone beats an
// older write and loses to a newer one.
func TestPolicyMergeNewestWins(t *testing.T) {
	at := func(ms int64, origin string) Stamp {
		c := Clock{Wall: t0.UnixMilli() + ms, Origin: origin}
		return Stamp{Born: Clock{Wall: t0.UnixMilli(), Origin: "east"}, Clock: c}
	}
	older := &PolicyRecord{Scope: "client:acme", OnMetered: wire.MeteredQuiet, By: "alice", At: t0, Stamp: at(1, "east")}
	newer := &PolicyRecord{Scope: "client:acme", OnMetered: wire.MeteredNormal, By: "bob", At: t0, Stamp: at(2, "west")}
	tomb := tombstone(older, Clock{Wall: t0.UnixMilli() + 3, Origin: "east"}).(*PolicyRecord)
	for _, tc := range []struct {
		name string
		a, b *PolicyRecord
		want *PolicyRecord
	}{
		{"newer wins", older, newer, newer},
		{"a tombstone beats an older write", newer, tomb, tomb},
	} {
		ab, ba := mergePolicy(tc.a, tc.b), mergePolicy(tc.b, tc.a)
		if !sameJSON(ab, tc.want) || !sameJSON(ba, tc.want) {
			t.Errorf("%s: merge = %s and %s, want %s", tc.name, jsonOf(ab), jsonOf(ba), jsonOf(tc.want))
		}
	}
	again := *newer
	again.Clock.Wall = t0.UnixMilli() + 4
	if w := mergePolicy(tomb, &again); !sameJSON(w, &again) {
		t.Errorf("a newer write after the tombstone: merge = %s", jsonOf(w))
	}
	if err := tomb.check("client:acme"); err != nil {
		t.Errorf("tombstone: %v", err)
	}
}

// Policies replicate like any control record: set on one broker, in
// force on the other; conflicting writes from both sides of a partition
// end with the newest on both; a clear replicates as a tombstone, and a
// newer write beats it.
func TestPolicyReplicates(t *testing.T) {
	east, west := newBroker(t, "east", 0), newBroker(t, "west", 0)
	seedFleet(t, east.Store, []string{"m1", "m2"}, 1)
	converge(t, east.Store, west.Store)

	mustSetPolicy(t, east.Store, ClientScope("acme"), quiet6h)
	mustSetPolicy(t, east.Store, MachineScope("m2"), normal)
	converge(t, east.Store, west.Store)
	assertConverged(t, east.Store, west.Store)
	for id, want := range map[string]wire.AgentPolicy{"m1": quiet6h, "m2": normal} {
		if p := agentPolicy(t, west.Store, id); p != want {
			t.Errorf("west: %s %+v, want %+v", id, p, want)
		}
	}

	// The partition: both write the client's policy, west later.
	mustSetPolicy(t, east.at(time.Minute), ClientScope("acme"), quiet)
	mustSetPolicy(t, west.at(2*time.Minute), ClientScope("acme"), normal)
	// East clears m2's policy; west has not heard of it.
	if _, err := east.at(3 * time.Minute).ClearPolicy(MachineScope("m2")); err != nil {
		t.Fatal(err)
	}
	converge(t, east.Store, west.Store)
	assertConverged(t, east.Store, west.Store)
	for _, s := range []*broker{east, west} {
		for _, id := range []string{"m1", "m2"} {
			if p := agentPolicy(t, s.Store, id); p != normal {
				t.Errorf("%s: %s %+v, want west's newer %+v", s.cfg.Broker, id, p, normal)
			}
		}
	}

	// A newer write beats the tombstone everywhere.
	mustSetPolicy(t, west.at(4*time.Minute), MachineScope("m2"), quiet6h)
	converge(t, east.Store, west.Store)
	if p := agentPolicy(t, east.Store, "m2"); p != quiet6h {
		t.Errorf("east: m2 %+v, want %+v", p, quiet6h)
	}
	// What was imported is loaded again at Open.
	east.reopen(t)
	if p := agentPolicy(t, east.Store, "m2"); p != quiet6h {
		t.Errorf("east after reopen: m2 %+v, want %+v", p, quiet6h)
	}
	assertConverged(t, east.Store, west.Store)
}

// lockedBuffer collects a store's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A replicated policy that fails validation refuses its whole batch:
// logged, nothing stored, the policy in force unchanged.
func TestImportRefusesBadPolicy(t *testing.T) {
	src := newBroker(t, "east", 0)
	seedFleet(t, src.Store, []string{"m1"}, 1)
	mustSetPolicy(t, src.Store, ClientScope("acme"), quiet6h)
	mustSetPolicy(t, src.Store, MachineScope("m1"), normal)
	if _, err := src.ClearPolicy(MachineScope("m1")); err != nil {
		t.Fatal(err)
	}
	live, tomb := exportOne(t, src.Store, Key{KindPolicy, "client:acme"}), exportOne(t, src.Store, Key{KindPolicy, "machine:m1"})
	copyOf := func(r Record) Record {
		var c Record
		if err := json.Unmarshal(mustMarshal(t, r), &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name   string
		from   Record
		break_ func(r *Record)
	}{
		{"unknown on_metered", live, func(r *Record) { r.Policy.OnMetered = "loud" }},
		{"empty on_metered", live, func(r *Record) { r.Policy.OnMetered = "" }},
		{"interval too short", live, func(r *Record) { r.Policy.QuietCheckInSec = 60 }},
		{"interval too long", live, func(r *Record) { r.Policy.QuietCheckInSec = 8 * 24 * 3600 }},
		{"scope differs from its key", live, func(r *Record) { r.Policy.Scope = "client:globex" }},
		{"key of no scope", live, func(r *Record) { r.ID, r.Policy.Scope = "acme", "acme" }},
		{"machine scope with a bad ID", live, func(r *Record) { r.ID, r.Policy.Scope = "machine:m 1", "machine:m 1" }},
		{"no setter", live, func(r *Record) { r.Policy.By = "" }},
		{"no time set", live, func(r *Record) { r.Policy.At = time.Time{} }},
		{"tombstone with a policy", tomb, func(r *Record) { r.Policy.OnMetered = wire.MeteredQuiet }},
		{"payload of another kind", live, func(r *Record) { r.Client, r.Policy = &ClientRecord{Name: "acme", Stamp: r.Policy.Stamp}, nil }},
		{"two payloads", live, func(r *Record) { r.Client = &ClientRecord{Name: "acme", Stamp: r.Policy.Stamp} }},
		{"born after its last write", live, func(r *Record) { r.Policy.Born.Wall = r.Policy.Clock.Wall + 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := new(lockedBuffer)
			cfg := testConfig(t, 0)
			clk := newFakeClock(brokerStart)
			cfg.Broker, cfg.Now, cfg.Logger = "west", clk.Now, slog.New(slog.NewTextHandler(logs, nil))
			dst := openStore(t, cfg)
			seedFleet(t, dst, []string{"m1"}, 1)
			mustSetPolicy(t, dst, ClientScope("acme"), normal)
			good := copyOf(tomb)
			bad := copyOf(tt.from)
			tt.break_(&bad)
			before, digest := capture(t, dst), dst.Digest()
			res, err := dst.Import([]Record{good, bad})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Import = %+v, %v; want ErrMalformed", res, err)
			}
			assertUnchanged(t, dst, before)
			if dst.Digest() != digest {
				t.Error("digest changed")
			}
			if p := agentPolicy(t, dst, "m1"); p != normal {
				t.Errorf("policy in force changed to %+v", p)
			}
			if !strings.Contains(logs.String(), "import refused") {
				t.Errorf("refusal not logged; log:\n%s", logs.String())
			}
			if _, err := DecodeRecords(mustMarshal(t, []Record{good, bad})); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeRecords = %v, want ErrMalformed", err)
			}
			// The good record alone goes in.
			if res := mustImport(t, dst, good); res.Applied != 1 {
				t.Errorf("Import(good) = %+v", res)
			}
		})
	}
	// The unbroken records go in, and the live one is then in force.
	dst := newBroker(t, "west", 0)
	seedFleet(t, dst.Store, []string{"m1"}, 1)
	mustImport(t, dst.Store, copyOf(live), copyOf(tomb))
	if p := agentPolicy(t, dst.Store, "m1"); p != quiet6h {
		t.Errorf("imported: m1 %+v, want %+v", p, quiet6h)
	}
}
