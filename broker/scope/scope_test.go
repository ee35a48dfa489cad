package scope_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// The store is what the broker passes to Find.
var _ scope.Machines = (*store.Store)(nil)

// fleet is a fixed list of machines: Find only lists them.
type fleet []store.Machine

func (f fleet) Machines() []store.Machine { return f }

// machines has one name ("web") in two clients, so a bare name can be
// ambiguous for a technician who sees both.
var machines = fleet{
	{ID: "id-acme-web", Client: "acme", Name: "web"},
	{ID: "id-beta-web", Client: "beta", Name: "web"},
	{ID: "id-acme-db", Client: "acme", Name: "db"},
	{ID: "id-corp-mail", Client: "corp", Name: "mail"},
}

// Technicians of every kind of scope.
var (
	alice  = &wire.Technician{Name: "alice", Clients: []string{"acme"}}
	multi  = &wire.Technician{Name: "multi", Clients: []string{"acme", "beta"}}
	star   = &wire.Technician{Name: "star", Clients: []string{"*"}}
	admin  = &wire.Technician{Name: "admin", Admin: true}
	nobody = &wire.Technician{Name: "nobody"}
)

func TestFind(t *testing.T) {
	tests := []struct {
		desc   string
		tech   *wire.Technician
		name   string
		wantID string // "" when refused
		code   string
		detail string // in the refusal's message
	}{
		{"bare name, other client's twin unseen", alice, "web", "id-acme-web", "", ""},
		{"by ID", alice, "id-acme-db", "id-acme-db", "", ""},
		{"by client/name", alice, "acme/db", "id-acme-db", "", ""},
		{"client/name outside the scope", alice, "beta/web", "", wire.CodeNotFound, `"beta/web"`},
		{"ID outside the scope", alice, "id-beta-web", "", wire.CodeNotFound, "among the machines you can see"},
		{"name outside the scope", alice, "mail", "", wire.CodeNotFound, ""},
		{"ambiguous across two clients", multi, "web", "", wire.CodeConflict, "acme/web, beta/web"},
		{"client/name settles it", multi, "beta/web", "id-beta-web", "", ""},
		{"star sees every client", star, "mail", "id-corp-mail", "", ""},
		{"star is ambiguous too", star, "web", "", wire.CodeConflict, "ambiguous"},
		{"admin", admin, "corp/mail", "id-corp-mail", "", ""},
		{"admin, no such machine", admin, "nothing", "", wire.CodeNotFound, `"nothing"`},
		{"no clients at all", nobody, "web", "", wire.CodeNotFound, ""},
		{"a client name alone is no machine", admin, "acme", "", wire.CodeNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			m, werr := scope.Find(machines, tc.tech, tc.name)
			if tc.code == "" {
				if werr != nil || m.ID != tc.wantID {
					t.Fatalf("Find(%s, %q) = %q, %v; want %q", tc.tech.Name, tc.name, m.ID, werr, tc.wantID)
				}
				return
			}
			if werr == nil || werr.Code != tc.code || !strings.Contains(werr.Message, tc.detail) {
				t.Fatalf("Find(%s, %q) = %q, %v; want %s containing %q", tc.tech.Name, tc.name, m.ID, werr, tc.code, tc.detail)
			}
			if m.ID != "" {
				t.Errorf("refusal came with machine %q", m.ID)
			}
		})
	}
}

// TestFindStore resolves names among machines enrolled in a real store.
func TestFindStore(t *testing.T) {
	st := fleettest.Open(t)
	for _, m := range machines {
		fleettest.Enrol(t, st, m.ID, m.Client, m.Name, time.Now())
	}
	if m, werr := scope.Find(st, alice, "web"); werr != nil || m.ID != "id-acme-web" {
		t.Errorf("alice finds web: %q, %v", m.ID, werr)
	}
	if _, werr := scope.Find(st, multi, "web"); werr == nil || werr.Code != wire.CodeConflict {
		t.Errorf("multi finds web: %v, want conflict", werr)
	}
	if _, werr := scope.Find(st, alice, "corp/mail"); werr == nil || werr.Code != wire.CodeNotFound {
		t.Errorf("alice finds corp/mail: %v, want not_found", werr)
	}
}

func TestAuditVisible(t *testing.T) {
	tests := []struct {
		machine string
		want    map[string]bool // technician name → visible
	}{
		{"acme/web", map[string]bool{"alice": true, "multi": true, "star": true, "admin": true}},
		{"beta/web", map[string]bool{"multi": true, "star": true, "admin": true}},
		{"corp/mail", map[string]bool{"star": true, "admin": true}},
		// An entry with no machine (a console sign-in) is the admin's.
		{"", map[string]bool{"admin": true}},
		// A bare name names no client: only the admin sees it.
		{"web", map[string]bool{"admin": true}},
	}
	for _, tc := range tests {
		for _, tech := range []*wire.Technician{alice, multi, star, admin, nobody} {
			e := &wire.AuditEntry{Event: wire.AuditGranted, Machine: tc.machine}
			if got := scope.AuditVisible(tech, e); got != tc.want[tech.Name] {
				t.Errorf("AuditVisible(%s, %q) = %v, want %v", tech.Name, tc.machine, got, tc.want[tech.Name])
			}
		}
	}
}

func TestClients(t *testing.T) {
	tests := []struct {
		tech *wire.Technician
		want []string
	}{
		{alice, []string{"acme"}},
		{multi, []string{"acme", "beta"}},
		{star, []string{"acme", "beta", "corp"}},
		{admin, []string{"acme", "beta", "corp"}},
		{nobody, []string{}},
		{&scope.Everyone, []string{"acme", "beta", "corp"}},
	}
	for _, tc := range tests {
		cs := []wire.Client{{Name: "acme"}, {Name: "beta"}, {Name: "corp"}}
		var got []string
		for _, c := range scope.Clients(tc.tech, cs) {
			got = append(got, c.Name)
		}
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("Clients(%s) = %v, want %v", tc.tech.Name, got, tc.want)
		}
	}
}
