package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/buildinfo"
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

// TestFiguresStayWithinClients: one client's agents show in no other
// client's figures. globex runs agents on 99.0.0 and 0.0.1; acme's run
// this build's version (buildinfo.Version). acme's machines are not behind, in machines, show or
// alerts, for the admin or acme's technician, while globex's old agent is
// behind globex's 99.0.0; a newer acme agent then puts acme's others
// behind. And meshctl brokers counts acme's agents only for acme's
// technician.
func TestFiguresStayWithinClients(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBrokerArgs(t, base, "figures", 300*time.Millisecond, "--alert-every", "200ms")
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	admin.ok("clients", "create", "globex")
	acmePC := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "acme-pc", "windows-ready.json")
	acmeSrv := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "acme-srv", "linux-ready.json")
	globDB := enroll(t, base, admin.token("globex", 1, time.Hour).Token, "globex-db", "linux-agent-99.json")
	globWS := enroll(t, base, admin.token("globex", 1, time.Hour).Token, "globex-ws", "windows-old-agent.json")
	running := []*agent{acmePC, acmeSrv, globDB, globWS}
	for _, a := range running {
		a.start()
	}
	waitOnline(t, admin, 20*time.Second, running...)
	var added wire.TechnicianResult
	out := admin.ok("technicians", "add", "t1", "--clients", "acme", "--modes", "read-only", "--json")
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.LoginToken == "" {
		t.Fatalf("technicians add --json: %v\n%s", err, out)
	}
	t1 := newTech(t, base, "t1")
	t1.ok("login", "--credential", added.LoginToken)

	// Cards: each machine against its own client's newest.
	judged := func(c wire.Card) string {
		if c.Readiness.AgentBehind {
			return "<" + c.Readiness.NewestAgentVersion
		}
		return c.Readiness.NewestAgentVersion
	}
	for _, who := range []*tech{admin, t1} {
		for _, c := range who.machines("--client", "acme") {
			if j := judged(c); j != buildinfo.Version {
				t.Errorf("%s: %s judged %q, want acme's %s and not behind", who.name, c.Name, j, buildinfo.Version)
			}
		}
		if j := judged(who.show("acme/acme-pc")); j != buildinfo.Version {
			t.Errorf("%s: show acme-pc judged %q, want acme's %s", who.name, j, buildinfo.Version)
		}
	}
	if c, _ := cardOf(admin.machines(), globWS.id); judged(c) != "<99.0.0" {
		t.Errorf("globex-ws judged %q, want behind globex's 99.0.0", judged(c))
	}

	// Alerts: globex's old agent has one; acme's have none.
	behind := func(who *tech) []string {
		var open []wire.Alert
		if err := json.Unmarshal([]byte(who.ok("alerts", "--json")), &open); err != nil {
			t.Fatalf("%s: alerts --json: %v", who.name, err)
		}
		var out []string
		for _, a := range open {
			if a.Kind == wire.AlertAgentBehind {
				out = append(out, a.Machine)
			}
		}
		return out
	}
	poll(t, 20*time.Second, "globex-ws's agent-behind alert", func() (bool, string) {
		got := behind(admin)
		return slices.Contains(got, globWS.full()), strings.Join(got, ", ")
	})
	if got := behind(admin); !slices.Equal(got, []string{globWS.full()}) {
		t.Errorf("agent-behind alerts %v, want only globex-ws's", got)
	}
	if got := behind(t1); len(got) != 0 {
		t.Errorf("t1 lists agent-behind alerts %v, want none", got)
	}

	// Brokers: t1 counts acme's two bridged agents, the admin all four.
	agents := func(who *tech) int {
		var ms []wire.BrokerMember
		if err := json.Unmarshal([]byte(who.ok("brokers", "--json")), &ms); err != nil || len(ms) != 1 {
			t.Fatalf("%s: brokers --json: %v, %+v", who.name, err, ms)
		}
		return ms[0].Agents
	}
	if n := agents(t1); n != 2 {
		t.Errorf("t1's meshctl brokers counts %d agents, want acme's 2", n)
	}
	if n := agents(admin); n != 4 {
		t.Errorf("admin's meshctl brokers counts %d agents, want 4", n)
	}

	// A newer acme agent is acme's newest: the others are behind it. Its
	// fixture says 90.0.0, far above any release this test runs with.
	acmeNext := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "acme-build", "linux-agent-next.json")
	acmeNext.start()
	waitOnline(t, t1, 20*time.Second, acmeNext)
	for _, c := range t1.machines() {
		want := "<90.0.0"
		if c.ID == acmeNext.id {
			want = "90.0.0"
		}
		if j := judged(c); j != want {
			t.Errorf("after acme-build's 90.0.0: %s judged %q, want %q", c.Name, j, want)
		}
	}
	poll(t, 20*time.Second, "acme's agent-behind alerts", func() (bool, string) {
		got := behind(t1)
		return sameSet(got, []string{acmePC.full(), acmeSrv.full()}), strings.Join(got, ", ")
	})
}
