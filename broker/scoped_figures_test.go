package broker

import (
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestFiguresPerClient: what one client's machines report or do does not
// show in another client's figures. globex's agent on 99.0.0 does not put
// acme's 0.1.0 machines behind, on any card; and acme's technician's
// broker list counts acme's bridged agents only.
func TestFiguresPerClient(t *testing.T) {
	// Heartbeats slow enough that the bridges stay up without them.
	tb := startBroker(t, func(c *Config) { c.Heartbeat = 10 * time.Second })
	admin := tb.admin(t)
	tb.createClient(admin, "acme")
	tb.createClient(admin, "globex")
	acmeTok, globexTok := tb.token(admin, "acme", 2, time.Hour), tb.token(admin, "globex", 1, time.Hour)
	agents := map[string]*testClient{
		"acme-1":   tb.agent(t, acmeTok, "acme-1"),
		"acme-2":   tb.agent(t, acmeTok, "acme-2"),
		"globex-1": tb.agent(t, globexTok, "globex-1"),
	}
	for name, version := range map[string]string{"acme-1": "0.1.0", "acme-2": "0.1.0", "globex-1": "99.0.0"} {
		snap := testSnapshot(name)
		snap.AgentVersion = version
		if ack := agents[name].checkIn(1, snap); ack.Error != nil {
			t.Fatalf("%s check-in: %v", name, ack.Error)
		}
	}
	var added wire.TechnicianResult
	admin.mustTech(wire.OpTechniciansAdd, wire.TechnicianArgs{Name: "tina", Clients: []string{"acme"},
		Modes: []string{wire.ModeReadOnly}}, &added)
	tina := tb.newClient(t)
	if r := tina.login(added.LoginToken); r.Error != nil {
		t.Fatalf("tina's login: %+v", r.Error)
	}

	t.Run("cards", func(t *testing.T) {
		for _, who := range []*testClient{admin.withT(t), tina.withT(t)} {
			var cards []wire.Card
			who.mustTech(wire.OpMachines, wire.MachinesArgs{Client: "acme"}, &cards)
			for _, c := range cards {
				if c.Readiness.AgentBehind || c.Readiness.NewestAgentVersion != "0.1.0" {
					t.Errorf("machines: %s behind %v, judged against %q; want acme's 0.1.0", c.Name, c.Readiness.AgentBehind, c.Readiness.NewestAgentVersion)
				}
			}
			var card wire.Card
			who.mustTech(wire.OpShow, wire.ShowArgs{Machine: "acme/acme-1"}, &card)
			if card.Readiness.AgentBehind || card.Readiness.NewestAgentVersion != "0.1.0" {
				t.Errorf("show: acme-1 behind %v, judged against %q; want acme's 0.1.0", card.Readiness.AgentBehind, card.Readiness.NewestAgentVersion)
			}
		}
		snap := testSnapshot("acme-2")
		snap.AgentVersion = "0.2.0"
		if ack := agents["acme-2"].checkIn(2, snap); ack.Error != nil {
			t.Fatalf("acme-2 check-in: %v", ack.Error)
		}
		var card wire.Card
		tina.withT(t).mustTech(wire.OpShow, wire.ShowArgs{Machine: "acme-1"}, &card)
		if !card.Readiness.AgentBehind || card.Readiness.NewestAgentVersion != "0.2.0" {
			t.Errorf("show after acme-2's upgrade: acme-1 behind %v, judged against %q; want behind 0.2.0", card.Readiness.AgentBehind, card.Readiness.NewestAgentVersion)
		}
	})

	t.Run("brokers", func(t *testing.T) {
		for _, name := range []string{"acme-1", "globex-1"} {
			if _, reply := agents[name].openPresence(wire.Hello{MachineID: agents[name].ID(), AgentVersion: "0.1.0"}); reply.Error != nil {
				t.Fatalf("%s hello: %v", name, reply.Error)
			}
		}
		count := func(who *testClient) int {
			var ms []wire.BrokerMember
			who.mustTech(wire.OpBrokers, nil, &ms)
			if len(ms) != 1 || !ms[0].Self {
				t.Fatalf("brokers %+v, want this one alone", ms)
			}
			return ms[0].Agents
		}
		if n := count(admin.withT(t)); n != 2 {
			t.Errorf("admin counts %d agents, want both clients' 2", n)
		}
		if n := count(tina.withT(t)); n != 1 {
			t.Errorf("tina counts %d agents, want acme's 1", n)
		}
	})
}
