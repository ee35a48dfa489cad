package broker

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// online reports whether admin sees id online.
func online(admin *testClient, id string) bool {
	c, ok := admin.card(id)
	if !ok {
		admin.t.Fatalf("machine %s not in the list", id)
	}
	return c.Reachability.Online
}

// storedLastSeen waits until the store holds a last_seen for id and returns
// the record. The card turns offline a moment before last_seen is committed,
// so a bounded wait is needed.
func storedLastSeen(t *testing.T, tb *testBroker, id string) store.Machine {
	t.Helper()
	var m store.Machine
	waitFor(t, time.Second, "last_seen stored", func() bool {
		m, _ = tb.Store().Machine(id)
		return m.LastSeen != nil
	})
	return m
}

// TestPresenceRefused: a hello must name the bridge's own, enrolled machine.
func TestPresenceRefused(t *testing.T) {
	tb := startBroker(t)
	admin, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	other := tb.agent(t, tok, "desk-02")
	stranger := tb.newClient(t)

	tests := []struct {
		name  string
		from  *testClient
		hello wire.Hello
		code  string
	}{
		{"hello naming another machine", agent, wire.Hello{MachineID: other.ID(), AgentVersion: "0.1.0"}, wire.CodeForbidden},
		{"hello from an unenrolled key", stranger, wire.Hello{MachineID: stranger.ID(), AgentVersion: "0.1.0"}, wire.CodeUnauthorized},
		{"hello without machine id", agent, wire.Hello{AgentVersion: "0.1.0"}, wire.CodeBadRequest},
		{"hello from a newer protocol", agent, wire.Hello{MachineID: agent.ID(), AgentVersion: "9.0.0",
			Versions: wire.Versions{Proto: 99, MinProto: 99}}, wire.CodeVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tb.state(t)
			ps, reply := tt.from.withT(t).openPresence(tt.hello)
			wantCode(t, reply.Error, tt.code)
			// The broker ends the stream after refusing.
			var ack wire.HeartbeatAck
			if err := ps.r.Read(wire.MaxReply, &ack); err == nil {
				t.Errorf("stream still open after refusal: read %+v", ack)
			}
			if !tb.log.has("refused", "request=presence", "code="+tt.code) {
				t.Errorf("refusal not logged with code %s", tt.code)
			}
			for _, id := range []string{agent.ID(), other.ID()} {
				if online(admin.withT(t), id) {
					t.Errorf("machine %s online after a refused hello", id)
				}
			}
			sameState(t, before, tb.state(t))
		})
	}
}

// TestPresenceHelloTooLarge: an oversized hello is refused unread with
// too_large, like every other oversized message.
func TestPresenceHelloTooLarge(t *testing.T) {
	tb := startBroker(t)
	_, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	var reply wire.HelloReply
	agent.raw(wire.ProtoPresence, []byte{0x80, 0x80, 0x80, 0x01}, false, &reply) // 2 MiB
	wantCode(t, reply.Error, wire.CodeTooLarge)
}

// TestPresenceOnlineOffline follows one machine through the reachability
// overlay: online with the heartbeat's live signals, offline at once on a
// clean close with last_seen stored.
func TestPresenceOnlineOffline(t *testing.T) {
	tb := startBroker(t)
	admin, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	if online(admin, agent.ID()) {
		t.Fatal("online before any presence stream")
	}

	ps, reply := agent.openPresence(wire.Hello{MachineID: agent.ID(), AgentVersion: "0.1.0"})
	if reply.Error != nil {
		t.Fatalf("hello: %v", reply.Error)
	}
	if reply.HeartbeatMS != tb.cfg.Heartbeat.Milliseconds() {
		t.Errorf("heartbeat_ms %d, want %d", reply.HeartbeatMS, tb.cfg.Heartbeat.Milliseconds())
	}
	if len(reply.Brokers) == 0 || reply.Brokers[0].PeerID != tb.ID() {
		t.Errorf("hello reply brokers: %+v", reply.Brokers)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		ack := ps.beat(t, wire.Heartbeat{Seq: seq, Load1: 0.25 * float64(seq), UserPresent: seq%2 == 1})
		if ack.Seq != seq {
			t.Errorf("ack seq %d, want %d", ack.Seq, seq)
		}
	}
	card, _ := admin.card(agent.ID())
	r := card.Reachability
	switch {
	case !r.Online:
		t.Errorf("not online after heartbeats: %+v", r)
	case r.Load1 == nil || *r.Load1 != 0.75:
		t.Errorf("load1 %v, want 0.75 from the last heartbeat", r.Load1)
	case r.UserPresent == nil || !*r.UserPresent:
		t.Errorf("user_present %v, want true from the last heartbeat", r.UserPresent)
	case r.Since == nil || r.LastSeen == nil || r.LastSeen.Before(*r.Since):
		t.Errorf("since/last_seen: %+v", r)
	case r.Broker != tb.Broker.cfg.Name:
		t.Errorf("broker %q, want %q", r.Broker, tb.Broker.cfg.Name)
	}
	lastBeat := *r.LastSeen

	// A clean close: offline at once, not after the heartbeat timeout.
	if err := ps.s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, time.Second, "offline after a clean close", func() bool { return !online(admin, agent.ID()) })
	t.Logf("offline %v after the clean close", took)
	m := storedLastSeen(t, tb, agent.ID())
	if !m.LastSeen.Equal(lastBeat) {
		t.Errorf("stored last_seen %v, want the last heartbeat %v", m.LastSeen, lastBeat)
	}
	card, _ = admin.card(agent.ID())
	if r := card.Reachability; r.LastSeen == nil || !r.LastSeen.Equal(*m.LastSeen) || r.Load1 != nil || r.UserPresent != nil {
		t.Errorf("offline reachability: %+v", r)
	}
	// The broker closes its side too.
	var ack wire.HeartbeatAck
	if err := ps.r.Read(wire.MaxReply, &ack); !errors.Is(err, io.EOF) {
		t.Errorf("after close, read gave %v, want io.EOF", err)
	}
}

// TestPresenceSilence: an agent that stops sending heartbeats goes offline
// after about MissedHeartbeats × Heartbeat, and its bridge is closed.
func TestPresenceSilence(t *testing.T) {
	tb := startBroker(t)
	admin, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	ps, reply := agent.openPresence(wire.Hello{MachineID: agent.ID(), AgentVersion: "0.1.0"})
	if reply.Error != nil {
		t.Fatalf("hello: %v", reply.Error)
	}
	ps.beat(t, wire.Heartbeat{Seq: 1, Load1: 0.1})
	last := time.Now()
	if !online(admin, agent.ID()) {
		t.Fatal("not online after a heartbeat")
	}
	silence := time.Duration(tb.cfg.MissedHeartbeats) * tb.cfg.Heartbeat
	waitFor(t, silence+2*time.Second, "offline after silence", func() bool { return !online(admin, agent.ID()) })
	took := time.Since(last)
	t.Logf("offline %v after the last heartbeat (silence limit %v)", took, silence)
	if took < silence-50*time.Millisecond {
		t.Errorf("offline after %v, before the %v silence limit", took, silence)
	}
	storedLastSeen(t, tb, agent.ID())
	waitFor(t, 2*time.Second, "bridge closed after silence", func() bool {
		return len(agent.h.Network().ConnsToPeer(agent.broker)) == 0
	})
}

// TestPresenceBadHeartbeat: a heartbeat that fails validation resets the
// stream and takes the machine offline.
func TestPresenceBadHeartbeat(t *testing.T) {
	tb := startBroker(t)
	admin, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	ps, reply := agent.openPresence(wire.Hello{MachineID: agent.ID(), AgentVersion: "0.1.0"})
	if reply.Error != nil {
		t.Fatalf("hello: %v", reply.Error)
	}
	ps.beat(t, wire.Heartbeat{Seq: 1, Load1: 0.5})
	if !online(admin, agent.ID()) {
		t.Fatal("not online after a heartbeat")
	}
	before := tb.state(t)
	if err := wire.Write(ps.s, &wire.Heartbeat{Seq: 2, Load1: -1}); err != nil {
		t.Fatal(err)
	}
	var ack wire.HeartbeatAck
	err := ps.r.Read(wire.MaxReply, &ack)
	if err == nil || errors.Is(err, io.EOF) {
		t.Errorf("after a bad heartbeat, read gave %v (%+v), want a stream reset", err, ack)
	} else if !errors.Is(err, network.ErrReset) {
		t.Logf("read error after bad heartbeat: %v (not network.ErrReset)", err)
	}
	waitFor(t, time.Second, "offline after a bad heartbeat", func() bool { return !online(admin, agent.ID()) })
	if !tb.log.has("bad heartbeat") {
		t.Error("bad heartbeat not logged")
	}
	// Only last_seen may change: it is the one reachability fact stored.
	storedLastSeen(t, tb, agent.ID())
	after := tb.state(t)
	for i := range after.Machines {
		if after.Machines[i].ID == agent.ID() {
			if after.Machines[i].LastSeen == nil {
				t.Error("no last_seen stored")
			}
			after.Machines[i].LastSeen, after.Machines[i].Rev = before.Machines[i].LastSeen, before.Machines[i].Rev
		}
	}
	sameState(t, before, after)
}

// TestPresenceReplaced: a second presence stream for the same machine
// replaces the first, which is reset; the machine stays online through the
// switch and follows the new stream's heartbeats.
func TestPresenceReplaced(t *testing.T) {
	tb := startBroker(t)
	admin, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	hello := wire.Hello{MachineID: agent.ID(), AgentVersion: "0.1.0"}
	first, _ := agent.openPresence(hello)
	first.beat(t, wire.Heartbeat{Seq: 1, Load1: 0.1})

	second, reply := agent.openPresence(hello)
	if reply.Error != nil {
		t.Fatalf("second hello: %v", reply.Error)
	}
	var ack wire.HeartbeatAck
	first.s.SetDeadline(time.Now().Add(2 * time.Second))
	if err := first.r.Read(wire.MaxReply, &ack); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("first stream after replacement: read gave %v, want a reset", err)
	}
	second.beat(t, wire.Heartbeat{Seq: 1, Load1: 0.9, UserPresent: true})
	card, _ := admin.card(agent.ID())
	if r := card.Reachability; !r.Online || r.Load1 == nil || *r.Load1 != 0.9 {
		t.Errorf("after replacement: %+v", r)
	}
	// The old stream's end must not take the machine offline.
	time.Sleep(2 * tb.cfg.Heartbeat)
	second.beat(t, wire.Heartbeat{Seq: 2, Load1: 0.8})
	if !online(admin, agent.ID()) {
		t.Error("offline although the replacing stream is alive")
	}
	second.s.CloseWrite()
	waitFor(t, time.Second, "offline after closing the replacing stream", func() bool { return !online(admin, agent.ID()) })
}
