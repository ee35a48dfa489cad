package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func techArgs(name string, clients ...string) wire.Technician {
	return wire.Technician{Name: name, Clients: clients, Modes: []string{wire.ModeReadOnly}, CreatedAt: t0}
}

// techStore has clients acme and globex and technician alice (acme), whose
// one-time login token hashes to the returned value and expires at
// t0+1h.
func techStore(t *testing.T) (*Store, Config, string) {
	t.Helper()
	s, cfg := newStore(t)
	mustClient(t, s, "acme")
	mustClient(t, s, "globex")
	hash := wire.HashSecret(wire.NewSecret())
	if err := s.CreateTechnician(techArgs("alice", "acme"), hash, t0.Add(time.Hour)); err != nil {
		t.Fatalf("CreateTechnician(alice): %v", err)
	}
	return s, cfg, hash
}

func TestCreateTechnician(t *testing.T) {
	tests := []struct {
		name    string
		tech    wire.Technician
		wantErr error
	}{
		{name: "ok", tech: techArgs("bob", "acme", "globex")},
		{name: "keys are not taken from the caller", tech: wire.Technician{Name: "carol", Clients: []string{"acme"},
			Modes: []string{wire.ModeElevated}, Keys: []string{"12D3KooWsneaky"}, CreatedAt: t0}},
		{name: "unknown client", tech: techArgs("bob", "acme", "initech"), wantErr: ErrNotFound},
		{name: "duplicate", tech: techArgs("alice", "globex"), wantErr: ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := techStore(t)
			before := capture(t, s)
			hash := wire.HashSecret(wire.NewSecret())
			err := s.CreateTechnician(tt.tech, hash, t0.Add(time.Hour))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("CreateTechnician = %v, want %v", err, tt.wantErr)
				}
				assertUnchanged(t, s, before)
				return
			}
			if err != nil {
				t.Fatalf("CreateTechnician: %v", err)
			}
			want := tt.tech
			want.Keys = nil
			techs, err := s.Technicians()
			if err != nil || len(techs) != 2 || techs[0].Name != "alice" || !sameJSON(techs[1], want) {
				t.Errorf("Technicians = %s, %v; want alice and %s", jsonOf(techs), err, jsonOf(want))
			}
			if _, err := s.TechnicianByKey("12D3KooWsneaky"); !errors.Is(err, ErrNotFound) {
				t.Errorf("TechnicianByKey(key passed to CreateTechnician) = %v, want ErrNotFound", err)
			}
		})
	}
}

// Login token hashes are keys like enrolment token hashes: storing a second
// technician under a hash that is already waiting for a login must be
// refused (as CreateToken does), not silently re-point the first
// technician's token at the second.
func TestCreateTechnicianLoginHashTaken(t *testing.T) {
	s, _, hash := techStore(t)
	before := capture(t, s)
	err := s.CreateTechnician(techArgs("mallory", "globex"), hash, t0.Add(time.Hour))
	if !errors.Is(err, ErrExists) {
		t.Errorf("CreateTechnician(hash in use) = %v, want ErrExists", err)
	}
	assertUnchanged(t, s, before)
	if tech, err := s.Login(hash, "12D3KooWalice", false, t0); err != nil || tech.Name != "alice" {
		t.Errorf("alice's token logs in as %q (%v), want alice", tech.Name, err)
	}
}

func TestLogin(t *testing.T) {
	s, cfg, hash := techStore(t)
	tech, err := s.Login(hash, "12D3KooWk1", false, t0.Add(59*time.Minute))
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if tech.Name != "alice" || !slices.Equal(tech.Keys, []string{"12D3KooWk1"}) {
		t.Errorf("Login = %s, want alice with key k1", jsonOf(tech))
	}
	if got, err := s.TechnicianByKey("12D3KooWk1"); err != nil || !sameJSON(got, tech) {
		t.Errorf("TechnicianByKey = %s, %v; want %s", jsonOf(got), err, jsonOf(tech))
	}

	// The token is used up: a second use binds nothing.
	before := capture(t, s)
	if _, err := s.Login(hash, "12D3KooWk2", false, t0); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("second Login = %v, want ErrTokenUnknown", err)
	}
	assertUnchanged(t, s, before)
	if _, err := s.TechnicianByKey("12D3KooWk2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("TechnicianByKey(k2) = %v, want ErrNotFound", err)
	}

	s = reopen(t, s, cfg)
	if got, err := s.TechnicianByKey("12D3KooWk1"); err != nil || !sameJSON(got, tech) {
		t.Errorf("after reopen, TechnicianByKey = %s, %v; want %s", jsonOf(got), err, jsonOf(tech))
	}
}

func TestLoginRefused(t *testing.T) {
	expiry := t0.Add(time.Hour)
	tests := []struct {
		name    string
		hash    string // "alice" means alice's token
		key     string
		admin   bool
		now     time.Time
		wantErr error
	}{
		{name: "unknown token", hash: wire.HashSecret("guess"), key: "12D3KooWk9", now: t0, wantErr: ErrTokenUnknown},
		{name: "exactly at expiry", hash: "alice", key: "12D3KooWk9", now: expiry, wantErr: ErrTokenExpired},
		{name: "after expiry", hash: "alice", key: "12D3KooWk9", now: expiry.Add(time.Hour), wantErr: ErrTokenExpired},
		{name: "key bound to other technician", hash: "alice", key: "12D3KooWbob", now: t0, wantErr: ErrExists},
		{name: "admin key bound to other technician", key: "12D3KooWbob", admin: true, now: t0, wantErr: ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, aliceHash := techStore(t)
			bobHash := wire.HashSecret(wire.NewSecret())
			if err := s.CreateTechnician(techArgs("bob", "globex"), bobHash, expiry); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Login(bobHash, "12D3KooWbob", false, t0); err != nil {
				t.Fatal(err)
			}
			if err := s.SetAdminHash(wire.HashSecret("admin secret"), t0); err != nil {
				t.Fatal(err)
			}
			hash := tt.hash
			if hash == "alice" {
				hash = aliceHash
			}
			before := capture(t, s)
			if _, err := s.Login(hash, tt.key, tt.admin, tt.now); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Login = %v, want %v", err, tt.wantErr)
			}
			assertUnchanged(t, s, before)
			if got, err := s.TechnicianByKey("12D3KooWbob"); err != nil || got.Name != "bob" {
				t.Errorf("TechnicianByKey(bob's key) = %q, %v; want bob", got.Name, err)
			}
		})
	}
}

func TestAdminLogin(t *testing.T) {
	s, cfg := newStore(t)
	if h := s.AdminHash(); h != "" {
		t.Errorf("AdminHash of a new store = %q, want empty", h)
	}
	before := capture(t, s)
	if _, err := s.Login("", "12D3KooWadm", true, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("admin Login before SetAdminHash = %v, want ErrNotFound", err)
	}
	assertUnchanged(t, s, before)

	hash := wire.HashSecret("admin secret")
	if err := s.SetAdminHash(hash, t0); err != nil {
		t.Fatalf("SetAdminHash: %v", err)
	}
	if got := s.AdminHash(); got != hash {
		t.Errorf("AdminHash = %q, want %q", got, hash)
	}
	tech, err := s.Login("ignored", "12D3KooWadm", true, t0)
	if err != nil {
		t.Fatalf("admin Login: %v", err)
	}
	want := wire.Technician{Name: AdminName, Admin: true, Clients: []string{"*"},
		Modes: []string{wire.ModeReadOnly, wire.ModeInteractive, wire.ModeElevated},
		Keys:  []string{"12D3KooWadm"}, CreatedAt: t0}
	if !sameJSON(tech, want) {
		t.Errorf("admin Login = %s, want %s", jsonOf(tech), jsonOf(want))
	}
	// Logging in again with the same key binds it once.
	if tech, err := s.Login("", "12D3KooWadm", true, t0); err != nil || !sameJSON(tech, want) {
		t.Errorf("second admin Login = %s, %v; want %s", jsonOf(tech), err, jsonOf(want))
	}

	// A new credential keeps the admin technician and its keys.
	s = reopen(t, s, cfg)
	newHash := wire.HashSecret("rotated")
	if err := s.SetAdminHash(newHash, t0.Add(time.Hour)); err != nil {
		t.Fatalf("SetAdminHash(rotated): %v", err)
	}
	if got := s.AdminHash(); got != newHash {
		t.Errorf("AdminHash after rotation = %q, want %q", got, newHash)
	}
	if got, err := s.TechnicianByKey("12D3KooWadm"); err != nil || !sameJSON(got, want) {
		t.Errorf("TechnicianByKey(admin key) = %s, %v; want %s", jsonOf(got), err, jsonOf(want))
	}
}

func TestTechnicianByKeyUnknown(t *testing.T) {
	s, _, _ := techStore(t)
	if _, err := s.TechnicianByKey("12D3KooWnobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("TechnicianByKey(unknown) = %v, want ErrNotFound", err)
	}
}
