package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestTechnicianScopes adds a technician scoped to one client and checks
// what it may see and do from its own home: only that client's machines,
// no admin operations, and a one-time login token that works once.
func TestTechnicianScopes(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBroker(t, base, "scopes", 300*time.Millisecond)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	admin.ok("clients", "create", "globex")
	acme1 := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "acme-pc", "windows-ready.json")
	acme2 := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "acme-srv", "")
	glob := enroll(t, base, admin.token("globex", 1, time.Hour).Token, "globex-pc", "windows-ready.json")
	// A machine named like an acme one, in globex: show must not leak it.
	globTwin := enroll(t, base, admin.token("globex", 1, time.Hour).Token, "acme-pc", "")
	acme1.start()
	glob.start()
	waitOnline(t, admin, 20*time.Second, acme1, glob)

	var added wire.TechnicianResult
	out := admin.ok("technicians", "add", "t1", "--clients", "acme", "--modes", "read-only,interactive", "--json")
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.LoginToken == "" {
		t.Fatalf("technicians add --json: %v\n%s", err, out)
	}

	t1 := newTech(t, base, "t1")
	if out := t1.ok("login", "--credential", added.LoginToken); !strings.Contains(out, "logged in as t1") {
		t.Errorf("t1 login: unexpected output %q", out)
	}
	var who wire.Technician
	if err := json.Unmarshal([]byte(t1.ok("whoami", "--json")), &who); err != nil {
		t.Fatal(err)
	}
	if who.Name != "t1" || who.Admin || !slices.Equal(who.Clients, []string{"acme"}) {
		t.Errorf("t1 whoami: %+v, want t1, not admin, clients [acme]", who)
	}

	// Only acme's machines, whatever the filter.
	wantIDs := ids([]wire.Card{{ID: acme1.id}, {ID: acme2.id}})
	if got := ids(t1.machines()); !slices.Equal(got, wantIDs) {
		t.Errorf("t1 sees machines %v, want acme's %v", got, wantIDs)
	}
	if got := t1.machines("--client", "globex"); len(got) != 0 {
		t.Errorf("t1 machines --client globex: %v, want none", names(got))
	}
	if got := t1.machines("--pending-update", "KB5034441"); !slices.Equal(names(got), []string{"acme/acme-pc"}) {
		t.Errorf("t1 machines --pending-update KB5034441: %v, want only acme/acme-pc", names(got))
	}
	// The admin still sees everything.
	if got := admin.machines(); len(got) != 4 {
		t.Errorf("admin sees %d machines, want 4", len(got))
	}

	// show: acme machines by name and ID; globex's by no name at all.
	if c := t1.show(acme1.id); c.Name != "acme-pc" || c.Client != "acme" || len(c.History) == 0 {
		t.Errorf("t1 show %s: %s/%s with %d history items", acme1.id, c.Client, c.Name, len(c.History))
	}
	if c := t1.show("acme-pc"); c.ID != acme1.id {
		t.Errorf("t1 show acme-pc: got machine %s (%s/%s), want acme's %s; the globex twin must be invisible", c.ID, c.Client, c.Name, acme1.id)
	}
	for _, m := range []string{glob.id, "globex-pc", "globex/globex-pc", globTwin.id, "globex/acme-pc"} {
		if msg := t1.fails("show", m, "--json"); !strings.Contains(msg, "no machine") {
			t.Errorf("t1 show %s: want a not-found error, got %q", m, msg)
		}
	}

	// Admin operations are refused, and change nothing.
	clientsBefore := admin.ok("clients", "ls", "--json")
	for _, args := range [][]string{
		{"clients", "create", "evil"},
		{"tokens", "create", "--client", "acme"},
		{"technicians", "add", "t2", "--clients", "globex", "--modes", "read-only"},
		{"technicians", "ls"},
	} {
		if msg := t1.fails(args...); !strings.Contains(msg, "admin") {
			t.Errorf("t1 %s: stderr should say it needs an admin: %q", strings.Join(args, " "), msg)
		}
	}
	if after := admin.ok("clients", "ls", "--json"); after != clientsBefore {
		t.Errorf("refused admin operations changed the clients:\nbefore %s\nafter  %s", clientsBefore, after)
	}
	var techs []wire.Technician
	if err := json.Unmarshal([]byte(admin.ok("technicians", "ls", "--json")), &techs); err != nil {
		t.Fatal(err)
	}
	if len(techs) != 2 {
		t.Errorf("technicians after refused add: %+v, want admin and t1", techs)
	}

	// The one-time token does not work twice: not from another home...
	thief := newTech(t, base, "thief")
	if msg := thief.fails("login", "--credential", added.LoginToken); !strings.Contains(msg, "login refused") {
		t.Errorf("second login with t1's token: stderr %q, want login refused", msg)
	}
	if msg := thief.fails("machines"); !strings.Contains(msg, "not logged in") && !strings.Contains(msg, "not a technician") {
		t.Errorf("refused home: machines should fail as not logged in, got %q", msg)
	}
	// ...nor from t1's own.
	if msg := t1.fails("login", "--credential", added.LoginToken); !strings.Contains(msg, "login refused") {
		t.Errorf("t1 reusing its token: stderr %q, want login refused", msg)
	}
	// And t1's key stays bound: the refused attempts did not log it out.
	if got := ids(t1.machines()); !slices.Equal(got, wantIDs) {
		t.Errorf("after the refused logins t1 sees %v, want %v", got, wantIDs)
	}
}
