package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// revocations collects what a store reports through OnRevoke.
type revocations struct{ got []Revoked }

func (r *revocations) note(v Revoked) { r.got = append(r.got, v) }

// TestRemoveMachine: a removed machine's record, snapshot and history
// leave the store, its name is free, its check-ins and re-enrolment are
// refused with who removed it, OnRevoke hears of it, and it stays so
// after a restart.
func TestRemoveMachine(t *testing.T) {
	cfg := testConfig(t, 0)
	var rv revocations
	cfg.OnRevoke = rv.note
	s := openStore(t, cfg)
	mustClient(t, s, "acme")
	hash := mustToken(t, s, "acme", 3, t0.Add(time.Hour))
	mustEnroll(t, s, hash, "m1", "pc")
	mustCheckIn(t, s, checkIn("m1", 1, testSnapshot("pc", 0)), t0)

	r, err := s.RemoveMachine("m1", "alice", t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("RemoveMachine: %v", err)
	}
	want := "pc was removed from acme by alice at " + t0.Add(time.Minute).UTC().Format(time.RFC3339)
	if r.Message() != want {
		t.Errorf("message %q, want %q", r.Message(), want)
	}
	if len(rv.got) != 1 || rv.got[0].Machine != "m1" || rv.got[0].Reason != want {
		t.Errorf("OnRevoke got %+v, want m1 with %q", rv.got, want)
	}
	check := func(s *Store) {
		t.Helper()
		for _, m := range s.Machines() {
			if m.ID == "m1" {
				t.Error("the removed machine is still listed")
			}
		}
		if _, ok := s.Machine("m1"); ok {
			t.Error("the removed machine is still found")
		}
		if h, _ := s.History("m1"); len(h) != 0 {
			t.Errorf("history kept: %d items", len(h))
		}
		if _, err := s.CheckIn(checkIn("m1", 2, testSnapshot("pc", 1)), t0.Add(2*time.Minute)); !errors.Is(err, ErrRemoved) || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckIn after removal = %v, want ErrRemoved saying %q", err, want)
		}
		_, err := s.Enroll(EnrollRequest{TokenHash: hash, MachineID: "m1", Name: "pc2", Now: t0})
		if !errors.Is(err, ErrRemoved) {
			t.Errorf("Enroll of the removed key = %v, want ErrRemoved", err)
		}
		if _, err := s.RemoveMachine("m1", "alice", t0); !errors.Is(err, ErrRemoved) {
			t.Errorf("second RemoveMachine = %v, want ErrRemoved", err)
		}
	}
	check(s)
	if s.Count() != 0 {
		t.Errorf("count %d after removal, want 0", s.Count())
	}
	// The name is free for a new machine.
	mustEnroll(t, s, hash, "m2", "pc")
	check(reopen(t, s, cfg))
}

// TestRemovalReplicates: a removal imported from another broker drops the
// machine there too and is reported there, and a later copy of the
// machine's record from a broker that has not heard of the removal does
// not bring it back.
func TestRemovalReplicates(t *testing.T) {
	a, b := newBroker(t, "a", 0), newBroker(t, "b", 0)
	var rv revocations
	b.cfg.OnRevoke = rv.note
	b.reopen(t)
	mustClient(t, a.Store, "acme")
	hash := mustToken(t, a.Store, "acme", 2, brokerStart.Add(time.Hour))
	mustEnroll(t, a.Store, hash, "m1", "pc")
	converge(t, a.Store, b.Store)
	stale := newBroker(t, "c", 0) // holds the machine, never hears of the removal
	converge(t, a.Store, stale.Store)

	if _, err := a.RemoveMachine("m1", "alice", brokerStart); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)
	if _, ok := b.Machine("m1"); ok {
		t.Error("b still holds the removed machine")
	}
	if len(rv.got) != 1 || rv.got[0].Machine != "m1" {
		t.Errorf("b's OnRevoke got %+v, want m1", rv.got)
	}
	converge(t, stale.Store, b.Store)
	if _, ok := b.Machine("m1"); ok {
		t.Error("a stale copy brought the removed machine back on b")
	}
	if _, ok := stale.Machine("m1"); ok {
		t.Error("the stale broker kept the machine after the removal reached it")
	}
}

// TestDisableTechnician: a disabled technician's key is refused with who
// disabled it, OnRevoke hears of it with its keys, enabling restores it,
// the admin cannot be disabled, and a disable replicates and is reported
// on the other broker.
func TestDisableTechnician(t *testing.T) {
	a, b := newBroker(t, "a", 0), newBroker(t, "b", 0)
	var ra, rb revocations
	a.cfg.OnRevoke, b.cfg.OnRevoke = ra.note, rb.note
	a.reopen(t)
	b.reopen(t)
	mustClient(t, a.Store, "acme")
	hash := wire.HashSecret(wire.NewSecret())
	if err := a.CreateTechnician(techArgs("bob", "acme"), hash, brokerStart.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Login(hash, "keybob", false, brokerStart); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)

	if _, err := a.SetTechnicianDisabled("bob", true, "admin", brokerStart); err != nil {
		t.Fatal(err)
	}
	if _, err := a.TechnicianByKey("keybob"); !errors.Is(err, ErrDisabled) || !strings.Contains(err.Error(), "disabled by admin at") {
		t.Errorf("TechnicianByKey of a disabled technician = %v, want ErrDisabled saying by whom", err)
	}
	if len(ra.got) != 1 || ra.got[0].Technician != "bob" || len(ra.got[0].Keys) != 1 || ra.got[0].Keys[0] != "keybob" {
		t.Errorf("a's OnRevoke got %+v, want bob with keybob", ra.got)
	}
	converge(t, a.Store, b.Store)
	if _, err := b.TechnicianByKey("keybob"); !errors.Is(err, ErrDisabled) {
		t.Errorf("on b after replication: %v, want ErrDisabled", err)
	}
	if len(rb.got) != 1 || rb.got[0].Technician != "bob" {
		t.Errorf("b's OnRevoke got %+v, want bob", rb.got)
	}
	if _, err := b.SetTechnicianDisabled("bob", false, "admin", brokerStart); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)
	if tech, err := a.TechnicianByKey("keybob"); err != nil || tech.Disabled {
		t.Errorf("after enable on b, a says %+v, %v", tech, err)
	}
	for _, name := range []string{AdminName} {
		if _, err := a.SetTechnicianDisabled(name, true, "admin", brokerStart); !errors.Is(err, ErrProtected) {
			t.Errorf("disable %s = %v, want ErrProtected", name, err)
		}
		if err := a.RemoveTechnician(name, "admin", brokerStart); !errors.Is(err, ErrProtected) {
			t.Errorf("remove %s = %v, want ErrProtected", name, err)
		}
	}
	if err := a.RemoveTechnician("bob", "admin", brokerStart); err != nil {
		t.Fatal(err)
	}
	if _, err := a.TechnicianByKey("keybob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed technician's key: %v, want ErrNotFound", err)
	}
	converge(t, a.Store, b.Store)
	if last := rb.got[len(rb.got)-1]; last.Technician != "bob" || !strings.Contains(last.Reason, "removed") {
		t.Errorf("b's last revocation %+v, want bob removed", last)
	}
}

// TestTokensRevoke: tokens are listed by a short ID, revoked by it, and a
// revoked token enrols nobody; an ambiguous or malformed ID changes
// nothing.
func TestTokensRevoke(t *testing.T) {
	s, _ := newStore(t)
	mustClient(t, s, "acme")
	hash := mustToken(t, s, "acme", 2, t0.Add(time.Hour))
	other := mustToken(t, s, "acme", 1, t0.Add(time.Hour))
	toks, err := s.Tokens()
	if err != nil || len(toks) != 2 {
		t.Fatalf("Tokens = %+v, %v", toks, err)
	}
	before := capture(t, s)
	for _, bad := range []string{"", "abc", "zzzzzzzzzzzzzzzzzz", strings.Repeat("0", 16)} {
		if _, _, err := s.RevokeToken(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("RevokeToken(%q) = %v, want ErrNotFound", bad, err)
		}
	}
	assertUnchanged(t, s, before)
	got, _, err := s.RevokeToken(hash[:16])
	if err != nil || got.Client != "acme" || got.Uses != 2 {
		t.Fatalf("RevokeToken = %+v, %v", got, err)
	}
	if _, err := s.Enroll(EnrollRequest{TokenHash: hash, MachineID: "m1", Name: "pc", Now: t0}); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("enrol with a revoked token = %v, want ErrTokenUnknown", err)
	}
	if toks, _ := s.Tokens(); len(toks) != 1 || toks[0].ID != other[:16] {
		t.Errorf("after revoke Tokens = %+v, want only %s", toks, other[:16])
	}
}

// TestRemoveClient: a client with machines is refused without force; with
// force its machines and tokens go with it.
func TestRemoveClient(t *testing.T) {
	s, _ := enrolled(t, 0, "m1", "m2")
	before := capture(t, s)
	if _, _, err := s.RemoveClient("acme", false, "admin", t0); !errors.Is(err, ErrClientInUse) || !strings.Contains(err.Error(), "2 machine(s)") {
		t.Fatalf("RemoveClient without force = %v, want ErrClientInUse naming 2 machines", err)
	}
	assertUnchanged(t, s, before)
	ids, _, err := s.RemoveClient("acme", true, "admin", t0)
	if err != nil || len(ids) != 2 {
		t.Fatalf("RemoveClient --force = %v, %v", ids, err)
	}
	if s.Count() != 0 || s.ClientExists("acme") {
		t.Errorf("after removal: %d machines, client exists %v", s.Count(), s.ClientExists("acme"))
	}
	if toks, _ := s.Tokens(); len(toks) != 0 {
		t.Errorf("tokens left: %+v", toks)
	}
	if r, ok := s.Removal("m1"); !ok || r.By != "admin" {
		t.Errorf("removal of m1 = %+v, %v", r, ok)
	}
}

// TestRotateAdmin: rotating the admin credential on one broker signs out
// the admin keys bound on every broker (reported there through OnRevoke),
// keeps keys bound after the rotation, and a broker that first starts
// after the rotation does not bring the old incarnation (or its keys)
// back.
func TestRotateAdmin(t *testing.T) {
	a, b := newBroker(t, "a", 0), newBroker(t, "b", 0)
	var ra, rb revocations
	a.cfg.OnRevoke, b.cfg.OnRevoke = ra.note, rb.note
	a.reopen(t)
	b.reopen(t)
	for _, s := range []*broker{a, b} {
		if err := s.SetAdminHash(wire.HashSecret("admin "+s.cfg.Broker), brokerStart); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Login("", "key"+s.cfg.Broker, true, brokerStart); err != nil {
			t.Fatal(err)
		}
	}
	converge(t, a.Store, b.Store)

	gone, err := a.RotateAdmin(wire.HashSecret("rotated"), "local:root", brokerStart)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(gone, ",") != "keya,keyb" {
		t.Errorf("RotateAdmin signed out %v, want keya,keyb", gone)
	}
	if len(ra.got) != 1 || ra.got[0].Technician != AdminName || len(ra.got[0].Keys) != 2 ||
		!strings.Contains(ra.got[0].Reason, "rotated") || !strings.Contains(ra.got[0].Reason, "local:root") {
		t.Errorf("a's OnRevoke got %+v, want admin's two keys, rotated by local:root", ra.got)
	}
	if a.AdminHash() != wire.HashSecret("rotated") {
		t.Error("the admin record does not hold the new hash")
	}
	if _, err := a.Login("", "keynew", true, brokerStart); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)
	for _, s := range []*broker{a, b} {
		for _, key := range []string{"keya", "keyb"} {
			if _, err := s.TechnicianByKey(key); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: old admin key %s = %v, want ErrNotFound", s.cfg.Broker, key, err)
			}
		}
		if tech, err := s.TechnicianByKey("keynew"); err != nil || tech.Name != AdminName || !tech.Admin {
			t.Errorf("%s: key bound after the rotation = %+v, %v; want admin", s.cfg.Broker, tech, err)
		}
	}
	if len(rb.got) != 1 || rb.got[0].Technician != AdminName || strings.Join(rb.got[0].Keys, ",") != "keya,keyb" {
		t.Errorf("b's OnRevoke got %+v, want admin's keys keya,keyb", rb.got)
	}

	// A broker whose store starts after the rotation creates the admin
	// technician's first incarnation, logs a key in before it syncs, and
	// then takes the rotated record: its early key goes, keynew stays.
	late := newBroker(t, "late", 0)
	if err := late.at(time.Minute).SetAdminHash(wire.HashSecret("admin late"), brokerStart.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := late.Login("", "keylate", true, brokerStart); err != nil {
		t.Fatal(err)
	}
	converge(t, late.Store, a.Store)
	converge(t, a.Store, b.Store)
	assertConverged(t, a.Store, b.Store)
	assertConverged(t, a.Store, late.Store)
	for _, s := range []*broker{a, b, late} {
		if _, err := s.TechnicianByKey("keynew"); err != nil {
			t.Errorf("%s: keynew after a late broker joined: %v", s.cfg.Broker, err)
		}
		if _, err := s.TechnicianByKey("keylate"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: the late broker's pre-sync key = %v, want ErrNotFound (the rotated incarnation wins)", s.cfg.Broker, err)
		}
	}
}
