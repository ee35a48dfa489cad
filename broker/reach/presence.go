package reach

import (
	"errors"
	"io"
	"time"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/wire"
)

// helloTimeout bounds the wait for a presence stream's hello and the
// write of its reply.
const helloTimeout = 10 * time.Second

// Spec is how presence streams open: the hello within helloTimeout, and a
// small reader, since a heartbeat is under 200 bytes and the reader is held
// for every connected agent (512 bytes instead of 4 KiB saves 3.5 KiB an
// agent).
var Spec = serve.Spec{Name: "presence", Deadline: helloTimeout, MaxRequest: wire.MaxControl, ReadBuffer: 512,
	Reply: func() wire.Refusable { return &wire.HelloReply{} }}

// Why a presence stream ended, as logged.
const (
	endClosed    = "closed by agent"
	endBad       = "bad heartbeat"
	endMissed    = "heartbeats missed"
	endLost      = "bridge lost"
	endHelloFail = "hello reply failed"
)

// ServePresence serves one presence stream (wire.ProtoPresence): hello,
// then heartbeats until the stream ends or falls silent for
// MissedHeartbeats intervals.
func (l *Layer) ServePresence(s *serve.Stream, hello *wire.Hello) (any, error) {
	id := s.Remote.String()
	if e := wire.CheckVersions(hello.Versions, "agent "+hello.AgentVersion, "broker "+buildinfo.Version); e != nil {
		return nil, e
	}
	if hello.MachineID != id {
		return nil, wire.Errorf(wire.CodeForbidden,
			"hello names machine %s, but the bridge is authenticated as %s", hello.MachineID, id)
	}
	m, ok := l.deps.Store.Machine(id)
	if !ok {
		return nil, wire.Errorf(wire.CodeUnauthorized, "machine is not enrolled on this broker")
	}
	gen := l.arrive(s, &m, hello)
	reason := l.heartbeats(s, &m, gen)
	l.leave(s, &m, gen, reason)
	return nil, nil
}

// arrive puts m in the table and tells the cluster and the queue.
func (l *Layer) arrive(s *serve.Stream, m *store.Machine, hello *wire.Hello) uint64 {
	now := l.cfg.Now()
	gen := l.table.open(m.ID, s.Stream, now, hello)
	l.arrived(m.ID, now, hello)
	l.deps.Signals.Gone(m.ID) // a new stream starts with no sessions reported
	l.changed()
	l.work.Kick() // work may be waiting for this machine
	if l.announcer != nil {
		l.announcer.SetOnline(m.ID, now)
	}
	l.online.Set(float64(l.table.count()))
	log := l.cfg.Logger.With("machine", m.Name, "client", m.Client, "id", m.ID)
	if r := hello.Returned; r != nil {
		log = log.With("returned", r.What, "at", r.At, "detail", r.Detail)
	}
	if hello.UDPBlockedSince != nil {
		log = log.With("udp_blocked_since", *hello.UDPBlockedSince)
	}
	log.Info("machine online")
	return gen
}

// leave takes m out of the table once stream gen ended for reason, unless
// a newer stream replaced it.
func (l *Layer) leave(s *serve.Stream, m *store.Machine, gen uint64, reason string) {
	// Store last_seen before the machine leaves the table, so no card ever
	// shows it offline without one.
	if last, current := l.table.lastBeat(m.ID, gen); current {
		if err := l.deps.Store.SetLastSeen(map[string]time.Time{m.ID: last}); err != nil {
			l.cfg.Logger.Warn("storing last-seen time", "id", m.ID, "err", err)
		}
	}
	r, current := l.table.close(m.ID, gen)
	if !current {
		return
	}
	now := l.cfg.Now()
	l.departed(m.ID, r, reason, now)
	l.deps.Signals.Gone(m.ID)
	l.changed()
	if l.announcer != nil {
		l.announcer.SetOffline(m.ID, now)
	}
	l.online.Set(float64(l.table.count()))
	log := l.cfg.Logger.With("machine", m.Name, "client", m.Client, "id", m.ID, "reason", reason)
	if r.leaving != nil {
		log = log.With("away", r.leaving.Reason, "detail", r.leaving.Detail)
	}
	log.Info("machine offline")
	if reason == endMissed {
		// The agent may be frozen or cut off; close its bridge so it
		// reconnects cleanly when it comes back.
		s.Conn().Close()
	}
}

// heartbeats answers the hello and then each heartbeat, and returns why
// the stream ended.
func (l *Layer) heartbeats(s *serve.Stream, m *store.Machine, gen uint64) string {
	id := m.ID
	list := l.list.get()
	reply := wire.HelloReply{HeartbeatMS: l.cfg.Heartbeat.Milliseconds(), Brokers: list.brokers, Left: list.left,
		ReconnectSpreadMS: reconnectSpread(l.deps.Store.Count(), len(list.brokers), l.cfg.AcceptRate).Milliseconds()}
	var policy wire.AgentPolicy // the policy this agent was told
	if l.deps.Policy != nil {
		// Always, an empty one too: an agent reads a missing policy as
		// an older broker's silence, not as "none is set".
		policy = l.deps.Policy(m)
		reply.Policy = &policy
	}
	sent := list.digest // the broker list this agent has now
	s.SetWriteDeadline(time.Now().Add(helloTimeout))
	if err := wire.Write(s, &reply); err != nil {
		return endHelloFail
	}
	silence := time.Duration(l.cfg.MissedHeartbeats) * l.cfg.Heartbeat
	asked := false // a check-in was asked for on this stream
	for {
		s.SetReadDeadline(time.Now().Add(silence))
		var hb wire.Heartbeat
		if why := readEnd(s.Reader.Read(wire.MaxControl, &hb)); why != "" {
			if why == endBad {
				l.cfg.Logger.Warn("bad heartbeat", "id", id)
				s.Reset()
			}
			return why
		}
		l.table.beat(id, gen, l.cfg.Now(), hb.Leaving)
		if hb.Leaving != nil {
			l.cfg.Logger.Debug("leaving notice", "id", id, "reason", hb.Leaving.Reason, "detail", hb.Leaving.Detail)
		}
		l.deps.Signals.Beat(id, &hb)
		ack := wire.HeartbeatAck{Seq: hb.Seq}
		if !asked && l.wantsCheckIn(id, hb.CheckInSeq) {
			ack.CheckIn, asked = true, true
		}
		if l.deps.Policy != nil {
			if p := l.deps.Policy(m); p != policy {
				// Set, changed or cleared since the agent was told.
				policy, ack.Policy = p, &p
			}
		}
		if l.list.ackList(&ack, &sent) {
			l.cfg.Logger.Debug("broker list sent again", "id", id, "brokers", len(ack.Brokers), "left", len(ack.Left))
		}
		s.SetWriteDeadline(time.Now().Add(silence))
		if err := wire.Write(s, &ack); err != nil {
			return endLost
		}
	}
}

// readEnd says why a heartbeat read ended the stream, or "" if it did not.
func readEnd(err error) string {
	var timeout interface{ Timeout() bool }
	switch {
	case err == nil:
		return ""
	case errors.Is(err, io.EOF):
		return endClosed
	case errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrTooLarge):
		return endBad
	case errors.As(err, &timeout) && timeout.Timeout():
		return endMissed
	}
	return endLost
}

// wantsCheckIn decides whether a heartbeat's ack asks for a check-in now.
func (l *Layer) wantsCheckIn(id string, agentSeq uint64) bool {
	if l.work.WantsCheckIn(id) {
		// Work is queued for it, judged by a check-in made now: a bridge
		// that reconnected after a network blip brings none.
		return true
	}
	if l.behind(id, agentSeq) {
		// The agent has an acknowledged check-in this broker does not
		// hold (its disk was restored from a backup, or replaced): ask
		// for a fresh one now rather than at the next interval.
		l.cfg.Logger.Info("asking for a check-in", "id", id, "agent_seq", agentSeq)
		return true
	}
	return false
}

// behind reports whether the store lacks a check-in the agent says was
// acknowledged.
func (l *Layer) behind(id string, agentSeq uint64) bool {
	if agentSeq == 0 {
		return false
	}
	m, ok := l.deps.Store.Machine(id)
	return ok && (m.LastCheckIn == nil || m.LastCheckIn.Seq < agentSeq)
}

// reconnectSpread is the window agents spread their first reconnect over
// when their bridge drops (wire.HelloReply.ReconnectSpreadMS). When a
// broker restarts, every agent it held comes back at once; when one fails,
// its agents move to the others. Either way a broker may have to take
// back its share of the fleet, machines/brokers, in one go. Spread over
// the window, they arrive at half the broker's accept rate: admission
// control then rarely refuses anyone, no refusal is lost (quic-go drops
// those it has no room to send, and the dial that sent it waits), and
// the other half of the rate is there for technicians, whose connections
// the broker cannot tell from agents' before the handshake. The window
// is capped at two minutes. The price: a lone agent whose own network
// blipped waits half the window on average, 10 s when its broker holds
// 5,000 agents at the default rate of 500 a second.
func reconnectSpread(machines, brokers int, acceptRate float64) time.Duration {
	if acceptRate <= 0 || machines <= 0 {
		return 0
	}
	share := (machines + max(brokers, 1) - 1) / max(brokers, 1)
	d := time.Duration(float64(share) / (acceptRate / 2) * float64(time.Second))
	return min(d.Round(time.Millisecond), maxReconnectSpread)
}

// maxReconnectSpread caps reconnectSpread.
const maxReconnectSpread = 2 * time.Minute
