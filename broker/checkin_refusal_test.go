package broker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestCheckInRefused sends bad check-ins and checks that each gets a clear
// error code, is logged, and leaves the store exactly as it was.
func TestCheckInRefused(t *testing.T) {
	tb := startBroker(t)
	_, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	other := tb.agent(t, tok, "desk-02")
	stranger := tb.newClient(t) // a key that never enrolled
	if ack := agent.checkIn(1, testSnapshot("desk-01")); ack.Error != nil {
		t.Fatalf("first check-in: %v", ack.Error)
	}
	if ack := other.checkIn(1, testSnapshot("desk-02")); ack.Error != nil {
		t.Fatalf("other's check-in: %v", ack.Error)
	}

	ci := func(mut func(*wire.CheckIn)) wire.CheckIn {
		c := wire.CheckIn{MachineID: agent.ID(), Seq: 2, Reason: wire.ReasonInterval, Snapshot: testSnapshot("desk-01")}
		mut(&c)
		return c
	}
	withBody := func(body string) []byte {
		return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
	}
	valid := frame(t, ptr(ci(func(*wire.CheckIn) {})))

	tests := []struct {
		name       string
		from       *testClient
		data       []byte
		closeWrite bool
		code       string
		msg        string // a part of the error message
		wantSeq    uint64 // the ack's Seq, for conflicts
	}{
		{name: "malformed json", from: agent, data: withBody(`{"machine_id": "x", "seq": `),
			closeWrite: true, code: wire.CodeBadRequest, msg: "malformed"},
		{name: "json of the wrong shape", from: agent, data: withBody(`["machine_id", 2]`),
			closeWrite: true, code: wire.CodeBadRequest, msg: "malformed"},
		{name: "length prefix overflows", from: agent,
			data:       []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'},
			closeWrite: true, code: wire.CodeBadRequest, msg: "overflows"},
		{name: "stream ends inside the length prefix", from: agent, data: []byte{0x80},
			closeWrite: true, code: wire.CodeBadRequest, msg: "length prefix"},
		{name: "body shorter than its length prefix", from: agent,
			data:       append(binary.AppendUvarint(nil, uint64(len(valid))+100), valid[1:]...),
			closeWrite: true, code: wire.CodeBadRequest, msg: "into the body"},
		{name: "empty body", from: agent, data: []byte{0}, closeWrite: true, code: wire.CodeBadRequest},
		// Only the length prefix is sent and the stream stays open: a broker
		// that tried to read the body would wait for its one-minute deadline.
		{name: "over MaxSnapshot", from: agent, data: binary.AppendUvarint(nil, uint64(tb.cfg.MaxSnapshot)+1),
			code: wire.CodeTooLarge, msg: "too large"},
		{name: "length prefix of 2^63", from: agent, data: binary.AppendUvarint(nil, 1<<63),
			code: wire.CodeTooLarge, msg: "too large"},
		{name: "os.family beos", from: agent,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) { c.Snapshot.OS.Family = "beos" }))),
			code: wire.CodeBadRequest, msg: "os.family"},
		{name: "empty hostname", from: agent,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) { c.Snapshot.Hostname = "" }))),
			code: wire.CodeBadRequest, msg: "hostname"},
		{name: "no collected_at", from: agent,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) { c.Snapshot.CollectedAt = time.Time{} }))),
			code: wire.CodeBadRequest, msg: "collected_at"},
		{name: "seq zero", from: agent,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) { c.Seq = 0 }))),
			code: wire.CodeBadRequest, msg: "seq"},
		{name: "unknown reason", from: agent,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) { c.Reason = "whim" }))),
			code: wire.CodeBadRequest, msg: "reason"},
		{name: "unknown consent policy", from: agent,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) { c.Snapshot.Runtime.ConsentPolicy = "always" }))),
			code: wire.CodeBadRequest, msg: "consent_policy"},
		{name: "pending update without id", from: agent,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) { c.Snapshot.PendingUpdates = []wire.PendingUpdate{{}} }))),
			code: wire.CodeBadRequest, msg: "pending_updates"},
		{name: "another enrolled machine's record", from: agent,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) { c.MachineID = other.ID(); c.Seq = 9 }))),
			code: wire.CodeForbidden, msg: other.ID()},
		{name: "key that never enrolled", from: stranger,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) { c.MachineID = stranger.ID() }))),
			code: wire.CodeUnauthorized, msg: "not enrolled"},
		{name: "same seq, different content", from: agent,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) { c.Seq = 1; c.Snapshot.Hostname = "renamed" }))),
			code: wire.CodeConflict, msg: "sequence", wantSeq: 1},
		{name: "older seq", from: agent,
			data: frame(t, ptr(ci(func(c *wire.CheckIn) {
				c.Seq = 1
				c.Snapshot.AgentVersion = "0.0.9"
			}))),
			code: wire.CodeConflict, msg: "sequence", wantSeq: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tb.state(t)
			var ack wire.CheckInAck
			took := tt.from.withT(t).raw(wire.ProtoCheckIn, tt.data, tt.closeWrite, &ack)
			wantCode(t, ack.Error, tt.code)
			if ack.Error != nil && !strings.Contains(ack.Error.Message, tt.msg) {
				t.Errorf("message %q does not mention %q", ack.Error.Message, tt.msg)
			}
			if ack.Seq != tt.wantSeq {
				t.Errorf("ack seq %d, want %d", ack.Seq, tt.wantSeq)
			}
			if took > 3*time.Second {
				t.Errorf("refusal took %v", took)
			}
			if !tb.log.has("refused", "request=checkin", "code="+tt.code) {
				t.Errorf("refusal not logged with code %s", tt.code)
			}
			sameState(t, before, tb.state(t))
		})
	}
}

// TestCheckInOversizedCall sends an oversized check-in the way an agent
// does, through bridge.Call, which writes the whole body before it reads the
// reply. The agent must learn that the snapshot is too large (so it can
// shrink it), not just see a reset stream.
func TestCheckInOversizedCall(t *testing.T) {
	tb := startBroker(t)
	_, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	snap := testSnapshot("desk-01")
	for i := range 40_000 {
		snap.Packages = append(snap.Packages, wire.Package{Name: fmt.Sprintf("package-%06d", i), Version: "1.0.0-1"})
	}
	ci := wire.CheckIn{MachineID: agent.ID(), Seq: 1, Reason: wire.ReasonInterval, Snapshot: snap}
	raw, _ := json.Marshal(&ci)
	if len(raw) <= tb.cfg.MaxSnapshot {
		t.Fatalf("test snapshot is %d bytes, not over the %d limit", len(raw), tb.cfg.MaxSnapshot)
	}
	before := tb.state(t)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var ack wire.CheckInAck
	err := bridge.Call(ctx, agent.h, agent.broker, wire.ProtoCheckIn, &ci, &ack, wire.MaxReply)
	switch {
	case err != nil:
		t.Errorf("oversized check-in: bridge.Call failed with %v; want a reply with code %s", err, wire.CodeTooLarge)
	default:
		wantCode(t, ack.Error, wire.CodeTooLarge)
	}
	sameState(t, before, tb.state(t))
}

// TestCheckInDuplicateAndConflict: a retry of the same check-in (same seq,
// same content) is acknowledged as a duplicate and stores nothing new; the
// same seq with different content is a conflict that names the stored seq.
func TestCheckInDuplicateAndConflict(t *testing.T) {
	tb := startBroker(t)
	_, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	snap := testSnapshot("desk-01")
	first := agent.checkIn(1, snap)
	if first.Error != nil || first.Seq != 1 || first.Duplicate || first.StoredAt.IsZero() {
		t.Fatalf("first check-in: %+v", first)
	}
	hist, _ := tb.Store().History(agent.ID())
	if len(hist) != 1 || hist[0].Seq != 1 {
		t.Fatalf("history after one check-in: %+v", hist)
	}

	before := tb.state(t)
	dup := agent.checkIn(1, snap)
	if dup.Error != nil || dup.Seq != 1 || !dup.Duplicate {
		t.Errorf("retried check-in: %+v, want seq 1 duplicate", dup)
	}
	if !dup.StoredAt.Equal(first.StoredAt) {
		t.Errorf("duplicate ack stored_at %v, want the original %v", dup.StoredAt, first.StoredAt)
	}
	sameState(t, before, tb.state(t))

	changed := snap
	changed.AgentVersion = "0.2.0"
	conflict := agent.checkIn(1, changed)
	wantCode(t, conflict.Error, wire.CodeConflict)
	if conflict.Seq != 1 {
		t.Errorf("conflict ack seq %d, want the stored seq 1", conflict.Seq)
	}
	sameState(t, before, tb.state(t))

	next := agent.checkIn(2, changed)
	if next.Error != nil || next.Seq != 2 || next.Duplicate {
		t.Errorf("next check-in: %+v", next)
	}
	hist, _ = tb.Store().History(agent.ID())
	if len(hist) != 2 || hist[0].Seq != 2 || hist[0].AgentVersion != "0.2.0" {
		t.Errorf("history after seq 2: %+v", hist)
	}
	if m, _ := tb.Store().Machine(agent.ID()); m.AgentVersion != "0.2.0" || m.LastCheckIn.Seq != 2 {
		t.Errorf("machine after seq 2: %+v", m)
	}
}

// withT returns a copy of c that reports to t, for use in subtests.
func (c *testClient) withT(t testing.TB) *testClient {
	cc := *c
	cc.t = t
	return &cc
}

func ptr[T any](v T) *T { return &v }
