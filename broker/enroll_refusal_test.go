package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestEnrollRefused checks that every bad enrolment gets its code, is logged,
// and neither creates a machine nor uses up the token.
func TestEnrollRefused(t *testing.T) {
	clock := new(testClock)
	tb := startBroker(t, func(c *Config) { c.Now = clock.Now })
	admin, tok := tb.fleet(t)
	single := tb.token(admin, "acme", 1, time.Hour)
	tb.agent(t, single, "used-it") // single is now used up
	short := tb.token(admin, "acme", 1, time.Minute)
	tb.agent(t, tok, "desk-01") // takes the name in acme
	other := startBroker(t)     // a second, unrelated broker

	tests := []struct {
		name    string
		req     wire.Enroll
		code    string
		msg     string
		advance time.Duration // move the broker's clock first
	}{
		{name: "token of another broker",
			req:  wire.Enroll{Secret: tok.Secret, BrokerID: other.ID(), Name: "desk-02"},
			code: wire.CodeTokenInvalid, msg: other.ID()},
		{name: "unknown secret",
			req:  wire.Enroll{Secret: wire.NewSecret(), BrokerID: tb.ID(), Name: "desk-02"},
			code: wire.CodeTokenInvalid, msg: "unknown token"},
		{name: "empty secret",
			req:  wire.Enroll{BrokerID: tb.ID(), Name: "desk-02"},
			code: wire.CodeBadRequest, msg: "secret"},
		{name: "used up",
			req:  wire.Enroll{Secret: single.Secret, BrokerID: tb.ID(), Name: "desk-02"},
			code: wire.CodeTokenInvalid, msg: "used up"},
		{name: "name taken",
			req:  wire.Enroll{Secret: tok.Secret, BrokerID: tb.ID(), Name: "desk-01"},
			code: wire.CodeConflict, msg: "desk-01"},
		{name: "bad name characters",
			req:  wire.Enroll{Secret: tok.Secret, BrokerID: tb.ID(), Name: "desk 01/../x"},
			code: wire.CodeBadRequest, msg: "name"},
		{name: "name starting with a dot",
			req:  wire.Enroll{Secret: tok.Secret, BrokerID: tb.ID(), Name: ".hidden"},
			code: wire.CodeBadRequest, msg: "name"},
		{name: "name too long",
			req:  wire.Enroll{Secret: tok.Secret, BrokerID: tb.ID(), Name: strings.Repeat("a", 65)},
			code: wire.CodeBadRequest, msg: "name"},
		{name: "expired", advance: 2 * time.Minute,
			req:  wire.Enroll{Secret: short.Secret, BrokerID: tb.ID(), Name: "desk-02"},
			code: wire.CodeTokenInvalid, msg: "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Advance(tt.advance)
			c := tb.newClient(t)
			before := tb.state(t)
			var reply wire.EnrollReply
			c.call(wire.ProtoEnroll, &tt.req, &reply)
			wantCode(t, reply.Error, tt.code)
			if reply.Error != nil && !strings.Contains(reply.Error.Message, tt.msg) {
				t.Errorf("message %q does not mention %q", reply.Error.Message, tt.msg)
			}
			if reply.MachineID != "" {
				t.Errorf("refused enrolment returned machine ID %s", reply.MachineID)
			}
			if _, ok := tb.Store().Machine(c.ID()); ok {
				t.Errorf("refused enrolment created a machine record")
			}
			if !tb.log.has("refused", "request=enroll", "code="+tt.code) {
				t.Errorf("refusal not logged with code %s", tt.code)
			}
			sameState(t, before, tb.state(t))
		})
	}
}

// TestEnrollRetry: an agent that lost the reply may enrol again with the same
// name; it gets its record back and the token is not used a second time.
func TestEnrollRetry(t *testing.T) {
	tb := startBroker(t)
	admin := tb.admin(t)
	tb.createClient(admin, "acme")
	tok := tb.token(admin, "acme", 2, time.Hour)
	agent := tb.agent(t, tok, "desk-01")
	before := tb.state(t)
	r := agent.enroll(tok, "desk-01")
	if r.Error != nil || r.MachineID != agent.ID() || r.Client != "acme" || r.Broker.PeerID != tb.ID() {
		t.Fatalf("retried enrolment: %+v", r)
	}
	sameState(t, before, tb.state(t))

	// The same key under another name is a conflict, not a second machine.
	r = agent.enroll(tok, "desk-99")
	wantCode(t, r.Error, wire.CodeConflict)
	sameState(t, before, tb.state(t))
}
