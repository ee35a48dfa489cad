package broker

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestTechUnknownKey: a key that never logged in is refused before any
// operation runs.
func TestTechUnknownKey(t *testing.T) {
	tb := startBroker(t)
	tb.fleet(t)
	stranger := tb.newClient(t)
	for _, op := range []string{wire.OpWhoAmI, wire.OpMachines, wire.OpClientsCreate, "no.such.op"} {
		t.Run(op, func(t *testing.T) {
			before := tb.state(t)
			_, werr := stranger.withT(t).tech(op, wire.ClientArgs{Name: "evil"})
			wantCode(t, werr, wire.CodeUnauthorized)
			sameState(t, before, tb.state(t))
		})
	}
	if !tb.log.has("refused", "request=tech", "code=unauthorized") {
		t.Error("refusal not logged")
	}
}

// TestTechScopes: a technician scoped to client A sees only A's machines,
// cannot run admin operations, and cannot log in twice with its one-time
// token.
func TestTechScopes(t *testing.T) {
	tb := startBroker(t)
	admin := tb.admin(t)
	tb.createClient(admin, "alpha")
	tb.createClient(admin, "bravo")
	a := tb.agent(t, tb.token(admin, "alpha", 1, time.Hour), "desk-a")
	b := tb.agent(t, tb.token(admin, "bravo", 1, time.Hour), "desk-b")
	for _, ag := range []*testClient{a, b} {
		if ack := ag.checkIn(1, testSnapshot("host")); ack.Error != nil {
			t.Fatalf("check-in: %v", ack.Error)
		}
	}

	var added wire.TechnicianResult
	admin.mustTech(wire.OpTechniciansAdd, wire.TechnicianArgs{Name: "tina", Clients: []string{"alpha"},
		Modes: []string{wire.ModeReadOnly}}, &added)
	if added.LoginToken == "" || added.Technician.Admin {
		t.Fatalf("technicians.add: %+v", added)
	}
	tina := tb.newClient(t)
	if r := tina.login(added.LoginToken); r.Error != nil || r.Technician.Name != "tina" || r.Broker.PeerID != tb.ID() {
		t.Fatalf("tina's login: %+v", r)
	}

	t.Run("machines", func(t *testing.T) {
		tina := tina.withT(t)
		var cards []wire.Card
		tina.mustTech(wire.OpMachines, wire.MachinesArgs{}, &cards)
		if len(cards) != 1 || cards[0].ID != a.ID() || cards[0].Client != "alpha" {
			t.Errorf("tina sees %+v, want only desk-a", cardIDs(cards))
		}
		tina.mustTech(wire.OpMachines, wire.MachinesArgs{Client: "bravo"}, &cards)
		if len(cards) != 0 {
			t.Errorf("filtering on bravo shows tina %v", cardIDs(cards))
		}
		admin := admin.withT(t)
		admin.mustTech(wire.OpMachines, wire.MachinesArgs{}, &cards)
		if len(cards) != 2 {
			t.Errorf("admin sees %v, want both machines", cardIDs(cards))
		}
	})
	t.Run("show", func(t *testing.T) {
		tina := tina.withT(t)
		for _, name := range []string{b.ID(), "desk-b", "bravo/desk-b"} {
			_, werr := tina.tech(wire.OpShow, wire.ShowArgs{Machine: name})
			wantCode(t, werr, wire.CodeNotFound)
			if werr != nil && strings.Contains(werr.Message, b.ID()) && name != b.ID() {
				t.Errorf("not_found for %q leaks the hidden machine's ID: %s", name, werr.Message)
			}
		}
		var card wire.Card
		tina.mustTech(wire.OpShow, wire.ShowArgs{Machine: "desk-a"}, &card)
		if card.ID != a.ID() || card.Snapshot == nil || len(card.History) != 1 {
			t.Errorf("show desk-a: id %s snapshot %v history %d", card.ID, card.Snapshot != nil, len(card.History))
		}
	})
	t.Run("clients.list", func(t *testing.T) {
		var cs []wire.Client
		tina.withT(t).mustTech(wire.OpClientsList, nil, &cs)
		if len(cs) != 1 || cs[0].Name != "alpha" {
			t.Errorf("tina's clients: %+v", cs)
		}
	})
	t.Run("admin operations", func(t *testing.T) {
		ops := []struct {
			op   string
			args any
		}{
			{wire.OpClientsCreate, wire.ClientArgs{Name: "charlie"}},
			{wire.OpTokensCreate, wire.TokenArgs{Client: "alpha", Uses: 1}},
			{wire.OpTechniciansAdd, wire.TechnicianArgs{Name: "eve", Clients: []string{"bravo"}, Modes: []string{wire.ModeElevated}}},
			{wire.OpTechniciansList, nil},
		}
		for _, o := range ops {
			before := tb.state(t)
			raw, werr := tina.withT(t).tech(o.op, o.args)
			wantCode(t, werr, wire.CodeForbidden)
			if len(raw) != 0 {
				t.Errorf("%s: refused, yet returned %s", o.op, raw)
			}
			sameState(t, before, tb.state(t))
		}
		if !tb.log.has("refused", "request=tech:clients.create", "code=forbidden") {
			t.Error("refusal not logged")
		}
	})
	t.Run("unknown op", func(t *testing.T) {
		for _, c := range []*testClient{tina, admin} {
			before := tb.state(t)
			_, werr := c.withT(t).tech("machines.delete", nil)
			wantCode(t, werr, wire.CodeBadRequest)
			if werr != nil && !strings.Contains(werr.Message, "machines.delete") {
				t.Errorf("message %q does not name the op", werr.Message)
			}
			sameState(t, before, tb.state(t))
		}
	})
	t.Run("bad args", func(t *testing.T) {
		before := tb.state(t)
		for _, args := range []any{
			json.RawMessage(`{"readiness": "on-fire"}`),
			json.RawMessage(`{"client": 7}`),
			json.RawMessage(`[1,2]`),
		} {
			_, werr := admin.withT(t).tech(wire.OpMachines, args)
			wantCode(t, werr, wire.CodeBadRequest)
		}
		for _, args := range []any{
			wire.TokenArgs{Client: "alpha", Uses: -1},
			wire.TokenArgs{Client: "no/such"},
			wire.TechnicianArgs{Name: "x", Clients: []string{"alpha"}, Modes: []string{"god"}},
			wire.TechnicianArgs{Name: "x", Modes: []string{wire.ModeReadOnly}},
		} {
			op := wire.OpTokensCreate
			if _, ok := args.(wire.TechnicianArgs); ok {
				op = wire.OpTechniciansAdd
			}
			_, werr := admin.withT(t).tech(op, args)
			wantCode(t, werr, wire.CodeBadRequest)
		}
		_, werr := admin.withT(t).tech(wire.OpTokensCreate, wire.TokenArgs{Client: "zulu"})
		wantCode(t, werr, wire.CodeNotFound)
		_, werr = admin.withT(t).tech(wire.OpClientsCreate, wire.ClientArgs{Name: "alpha"})
		wantCode(t, werr, wire.CodeConflict)
		sameState(t, before, tb.state(t))
	})
	t.Run("login token used twice", func(t *testing.T) {
		for _, c := range []*testClient{tb.newClient(t), tina} {
			before := tb.state(t)
			r := c.withT(t).login(added.LoginToken)
			wantCode(t, r.Error, wire.CodeTokenInvalid)
			if r.Technician.Name != "" {
				t.Errorf("refused login returned technician %+v", r.Technician)
			}
			sameState(t, before, tb.state(t))
		}
		ts := tb.state(t).Technicians
		i := slices.IndexFunc(ts, func(x wire.Technician) bool { return x.Name == "tina" })
		if i < 0 || !slices.Equal(ts[i].Keys, []string{tina.ID()}) {
			t.Errorf("tina's keys: %+v", ts)
		}
	})
	t.Run("login token of another broker", func(t *testing.T) {
		tok, err := wire.ParseToken(wire.KindLogin, added.LoginToken)
		if err != nil {
			t.Fatal(err)
		}
		other := startBroker(t)
		tok.Broker = other.info
		before := tb.state(t)
		r := tb.newClient(t).login(tok.String())
		wantCode(t, r.Error, wire.CodeTokenInvalid)
		sameState(t, before, tb.state(t))
	})
	t.Run("enrolment token as login", func(t *testing.T) {
		before := tb.state(t)
		r := tb.newClient(t).login(tb.token(admin.withT(t), "alpha", 1, time.Hour).String())
		wantCode(t, r.Error, wire.CodeBadRequest)
		// tb.token stored a new token; the login itself must add nothing.
		before.Tokens = tb.state(t).Tokens
		sameState(t, before, tb.state(t))
	})
}

// TestTechAdminLoginTwice: the admin credential is not one-time; several
// keys may hold it.
func TestTechAdminLoginTwice(t *testing.T) {
	tb := startBroker(t)
	a1, a2 := tb.admin(t), tb.admin(t)
	var who wire.Technician
	a2.mustTech(wire.OpWhoAmI, nil, &who)
	if !who.Admin || !slices.Contains(who.Keys, a1.ID()) || !slices.Contains(who.Keys, a2.ID()) {
		t.Errorf("admin after two logins: %+v", who)
	}
}

func cardIDs(cards []wire.Card) []string {
	var out []string
	for _, c := range cards {
		out = append(out, c.Client+"/"+c.Name)
	}
	return out
}
