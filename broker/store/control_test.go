package store

import (
	"errors"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestClients(t *testing.T) {
	s, _ := newStore(t)
	local := time.FixedZone("CET", 3600)
	c, err := s.CreateClient("globex", t0.In(local))
	if err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	if c.Name != "globex" || !c.CreatedAt.Equal(t0) || c.CreatedAt.Location() != time.UTC {
		t.Errorf("CreateClient = %+v, want globex created at %v UTC", c, t0)
	}
	mustClient(t, s, "acme")
	hash := mustToken(t, s, "acme", 2, t0.Add(time.Hour))
	mustEnroll(t, s, hash, "m1", "web1")
	mustEnroll(t, s, hash, "m2", "web2")

	got, err := s.Clients()
	if err != nil {
		t.Fatalf("Clients: %v", err)
	}
	want := []wire.Client{{Name: "acme", CreatedAt: t0, Machines: 2}, {Name: "globex", CreatedAt: t0}}
	if !sameJSON(got, want) {
		t.Errorf("Clients = %s, want %s", jsonOf(got), jsonOf(want))
	}
	for name, want := range map[string]bool{"acme": true, "globex": true, "initech": false} {
		if got := s.ClientExists(name); got != want {
			t.Errorf("ClientExists(%q) = %v, want %v", name, got, want)
		}
	}

	before := capture(t, s)
	if _, err := s.CreateClient("acme", t0.Add(time.Hour)); !errors.Is(err, ErrExists) {
		t.Errorf("CreateClient(duplicate) = %v, want ErrExists", err)
	}
	assertUnchanged(t, s, before)
}

func TestCreateToken(t *testing.T) {
	valid := Token{Client: "acme", UsesLeft: 3, Uses: 3, ExpiresAt: t0.Add(time.Hour), CreatedBy: "admin", CreatedAt: t0}
	tests := []struct {
		name    string
		hash    string // "" means a fresh one
		token   Token
		wantErr error
	}{
		{name: "ok", token: valid},
		{name: "unknown client", token: Token{Client: "initech", UsesLeft: 1, Uses: 1, ExpiresAt: t0.Add(time.Hour)}, wantErr: ErrNotFound},
		{name: "duplicate hash", hash: "taken", token: valid, wantErr: ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			mustClient(t, s, "acme")
			if err := s.CreateToken("taken", valid); err != nil {
				t.Fatalf("CreateToken(taken): %v", err)
			}
			hash := tt.hash
			if hash == "" {
				hash = wire.HashSecret(wire.NewSecret())
			}
			before := capture(t, s)
			err := s.CreateToken(hash, tt.token)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("CreateToken = %v, want %v", err, tt.wantErr)
				}
				assertUnchanged(t, s, before)
				return
			}
			if err != nil {
				t.Fatalf("CreateToken: %v", err)
			}
			got, err := s.Token(hash)
			if err != nil || !sameJSON(got, tt.token) {
				t.Errorf("Token = %+v, %v; want %+v", got, err, tt.token)
			}
		})
	}
}

func TestTokenUnknown(t *testing.T) {
	s, _ := newStore(t)
	if _, err := s.Token(wire.HashSecret("nope")); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("Token(unknown) = %v, want ErrTokenUnknown", err)
	}
}
