package broker

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestPolicyOps: an admin sets a client's and a machine's metered policy,
// lists and clears them; each write is audited and logged, and the
// machine's next check-in ack carries the policy in force. Technicians
// who are not admins list within their scope and write nothing; bad
// arguments are refused and change nothing.
func TestPolicyOps(t *testing.T) {
	tb := startBroker(t)
	admin, tok := tb.fleet(t)
	tb.createClient(admin, "globex")
	pc1, pc2 := tb.agent(t, tok, "pc-1"), tb.agent(t, tok, "pc-2")
	web := tb.agent(t, tb.token(admin, "globex", 1, time.Hour), "web")
	var added wire.TechnicianResult
	admin.mustTech(wire.OpTechniciansAdd, wire.TechnicianArgs{Name: "tina", Clients: []string{"acme"},
		Modes: []string{wire.ModeReadOnly}}, &added)
	tina := tb.newClient(t)
	if r := tina.login(added.LoginToken); r.Error != nil {
		t.Fatal(r.Error)
	}
	quiet := wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 6 * 3600}
	normal := wire.AgentPolicy{OnMetered: wire.MeteredNormal}

	var set wire.Policy
	admin.mustTech(wire.OpPolicySet, wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "acme"}, AgentPolicy: quiet}, &set)
	if set.Scope != "client:acme" || set.Client != "acme" || set.AgentPolicy != quiet || set.SetBy != "admin" {
		t.Errorf("policy.set acme answered %+v", set)
	}
	admin.mustTech(wire.OpPolicySet, wire.PolicyArgs{PolicyScope: wire.PolicyScope{Machine: "acme/pc-2"}, AgentPolicy: normal}, &set)
	if set.Scope != store.MachineScope(pc2.ID()) || set.Machine != "acme/pc-2" || set.MachineID != pc2.ID() {
		t.Errorf("policy.set pc-2 answered %+v", set)
	}
	admin.mustTech(wire.OpPolicySet, wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "globex"}, AgentPolicy: normal}, nil)

	t.Run("check-in acks", func(t *testing.T) {
		for _, tc := range []struct {
			c    *testClient
			want wire.AgentPolicy
		}{{pc1.withT(t), quiet}, {pc2.withT(t), normal}, {web.withT(t), normal}} {
			ack := tc.c.checkIn(1, testSnapshot("host"))
			if ack.Error != nil || ack.Policy == nil || *ack.Policy != tc.want {
				t.Errorf("%s: ack error %v, policy %+v; want %+v", tc.c.ID(), ack.Error, ack.Policy, tc.want)
			}
		}
	})
	t.Run("audited and logged", func(t *testing.T) {
		for _, detail := range []string{"client acme: quiet on metered connections, checking in every 6h0m0s",
			"machine acme/pc-2: normal on metered connections", "client globex: normal"} {
			if !tb.auditHas(t, wire.AuditMeteredPolicy, "admin", detail) {
				t.Errorf("no audit entry %q", detail)
			}
		}
		if !tb.log.has("metered policy set", "scope=client:acme", "on_metered=quiet", "quiet_check_in_s=21600", "by=admin") {
			t.Error("the write was not logged")
		}
	})
	t.Run("list", func(t *testing.T) {
		for _, tc := range []struct {
			c    *testClient
			want []string
		}{
			{admin.withT(t), []string{"client:acme", "client:globex", store.MachineScope(pc2.ID())}},
			{tina.withT(t), []string{"client:acme", store.MachineScope(pc2.ID())}},
		} {
			var ps []wire.Policy
			tc.c.mustTech(wire.OpPolicyList, nil, &ps)
			var got []string
			for _, p := range ps {
				got = append(got, p.Scope)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("%s lists %q, want %q", tc.c.ID(), got, tc.want)
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name string
			c    *testClient
			op   string
			args any
			code string
		}{
			{"tina sets", tina, wire.OpPolicySet, wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "acme"}, AgentPolicy: normal}, wire.CodeForbidden},
			{"tina clears", tina, wire.OpPolicyClear, wire.PolicyScope{Client: "acme"}, wire.CodeForbidden},
			{"an agent lists", pc1, wire.OpPolicyList, nil, wire.CodeUnauthorized},
			{"unknown on_metered", admin, wire.OpPolicySet, json.RawMessage(`{"client":"acme","on_metered":"loud"}`), wire.CodeBadRequest},
			{"no on_metered", admin, wire.OpPolicySet, json.RawMessage(`{"client":"acme"}`), wire.CodeBadRequest},
			{"interval too short", admin, wire.OpPolicySet, json.RawMessage(`{"client":"acme","on_metered":"quiet","quiet_check_in_s":60}`), wire.CodeBadRequest},
			{"interval with normal", admin, wire.OpPolicySet, json.RawMessage(`{"client":"acme","on_metered":"normal","quiet_check_in_s":3600}`), wire.CodeBadRequest},
			{"client and machine", admin, wire.OpPolicySet, json.RawMessage(`{"client":"acme","machine":"pc-1","on_metered":"quiet"}`), wire.CodeBadRequest},
			{"no scope", admin, wire.OpPolicySet, json.RawMessage(`{"on_metered":"quiet"}`), wire.CodeBadRequest},
			{"unknown client", admin, wire.OpPolicySet, wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "initech"}, AgentPolicy: normal}, wire.CodeNotFound},
			{"unknown machine", admin, wire.OpPolicySet, wire.PolicyArgs{PolicyScope: wire.PolicyScope{Machine: "nowhere"}, AgentPolicy: normal}, wire.CodeNotFound},
			{"clear with none set", admin, wire.OpPolicyClear, wire.PolicyScope{Machine: "acme/pc-1"}, wire.CodeNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before, policies := tb.state(t), tb.Store().Policies()
				raw, werr := tt.c.withT(t).tech(tt.op, tt.args)
				wantCode(t, werr, tt.code)
				if len(raw) != 0 {
					t.Errorf("refused, yet returned %s", raw)
				}
				sameState(t, before, tb.state(t))
				if after := tb.Store().Policies(); !reflect.DeepEqual(policies, after) {
					t.Errorf("policies changed:\n  was %+v\n  now %+v", policies, after)
				}
			})
		}
		if !tb.log.has("refused", "request=tech:policy.set", "code=forbidden") {
			t.Error("tina's refusal not logged")
		}
		if !tb.log.has("refused", "request=tech:policy.set", "code=bad_request") {
			t.Error("a bad request's refusal not logged")
		}
	})
	t.Run("clear", func(t *testing.T) {
		var old wire.Policy
		admin.withT(t).mustTech(wire.OpPolicyClear, wire.PolicyScope{Machine: pc2.ID()}, &old)
		if old.AgentPolicy != normal || old.Machine != "acme/pc-2" {
			t.Errorf("policy.clear answered %+v", old)
		}
		if ack := pc2.withT(t).checkIn(2, testSnapshot("host")); ack.Policy == nil || *ack.Policy != quiet {
			t.Errorf("pc-2 after its own is cleared: %+v, want acme's %+v", ack.Policy, quiet)
		}
		admin.withT(t).mustTech(wire.OpPolicyClear, wire.PolicyScope{Client: "acme"}, nil)
		if ack := pc2.withT(t).checkIn(3, testSnapshot("host")); ack.Policy == nil || *ack.Policy != (wire.AgentPolicy{}) {
			t.Errorf("pc-2 with no policy set: ack carries %+v, want an empty policy", ack.Policy)
		}
		if !tb.auditHas(t, wire.AuditMeteredPolicy, "admin", "client acme: cleared (was quiet") {
			t.Error("the clear was not audited")
		}
	})
}

// TestPolicyReplicated: a policy set on one broker of a cluster is in
// force on the other, whose check-in acks carry it; so is its clear.
func TestPolicyReplicated(t *testing.T) {
	b1, b2 := clusterPair(t)
	admin, tok := b1.fleet(t)
	pc := b1.agent(t, tok, "pc-1")
	waitFor(t, 20*time.Second, "b2 to hold the machine", func() bool {
		_, ok := b2.Store().Machine(pc.ID())
		return ok
	})
	quiet := wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 3600}
	admin.mustTech(wire.OpPolicySet, wire.PolicyArgs{PolicyScope: wire.PolicyScope{Machine: "pc-1"}, AgentPolicy: quiet}, nil)
	inForce := func() wire.AgentPolicy {
		m, _ := b2.Store().Machine(pc.ID())
		return b2.Store().AgentPolicy(&m)
	}
	waitFor(t, 20*time.Second, "b2 to hold the policy", func() bool { return inForce() == quiet })
	via := pc.via(t, b2)
	if ack := via.checkIn(1, testSnapshot("host")); ack.Error != nil || ack.Policy == nil || *ack.Policy != quiet {
		t.Errorf("b2's ack: error %v, policy %+v; want %+v", ack.Error, ack.Policy, quiet)
	}
	admin.mustTech(wire.OpPolicyClear, wire.PolicyScope{Machine: "pc-1"}, nil)
	waitFor(t, 20*time.Second, "b2 to hold the clear", func() bool { return inForce() == wire.AgentPolicy{} })
	if ack := via.checkIn(2, testSnapshot("host")); ack.Policy == nil || *ack.Policy != (wire.AgentPolicy{}) {
		t.Errorf("b2's ack after the clear carries %+v, want an empty policy", ack.Policy)
	}
}
