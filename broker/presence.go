package broker

import (
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// presence is the reachability overlay: which machines have a presence
// stream open to this broker right now, and their live signals. It lives
// only in memory; reachability is never stored as a verdict.
type presence struct {
	// onChange, if set, is called after a machine comes online, goes
	// offline, reports sessions or a person logging in or out: what the
	// console's live updates show. Load alone does not call it.
	onChange func()

	mu   sync.RWMutex
	gen  uint64           // mu guards all following fields
	live map[string]*live // machine ID → its current presence stream
}

// live is one machine's open presence stream.
type live struct {
	gen         uint64
	stream      network.Stream
	since       time.Time
	lastBeat    time.Time
	transport   string
	load1       float64
	userPresent bool
	sessions    []wire.SessionInfo // as the agent last reported them
}

func newPresence() *presence { return &presence{live: map[string]*live{}} }

// open registers a new presence stream for id, replacing (and resetting)
// an older one: an agent that reconnects after a silent loss must not wait
// for its old stream to time out.
func (p *presence) open(id string, s network.Stream, now time.Time) uint64 {
	defer p.changed() // runs after the unlock below
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	if old := p.live[id]; old != nil {
		old.stream.Reset()
	}
	p.live[id] = &live{gen: p.gen, stream: s, since: now, lastBeat: now,
		transport: transportName(s.Conn().RemoteMultiaddr().String())}
	return p.gen
}

// beat records a heartbeat on stream gen of id.
func (p *presence) beat(id string, gen uint64, hb *wire.Heartbeat, now time.Time) {
	p.mu.Lock()
	changed := false
	if l := p.live[id]; l != nil && l.gen == gen {
		changed = l.userPresent != hb.UserPresent
		l.lastBeat, l.load1, l.userPresent = now, hb.Load1, hb.UserPresent
	}
	p.mu.Unlock()
	if changed {
		p.changed()
	}
}

func (p *presence) changed() {
	if p.onChange != nil {
		p.onChange()
	}
}

// lastBeat returns when stream gen of id last beat, if it is current.
func (p *presence) lastBeat(id string, gen uint64) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.live[id]; l != nil && l.gen == gen {
		return l.lastBeat, true
	}
	return time.Time{}, false
}

// close removes stream gen of id and reports whether it was still the
// current one, and when it last beat.
func (p *presence) close(id string, gen uint64) (current bool, lastBeat time.Time) {
	p.mu.Lock()
	l := p.live[id]
	if l == nil || l.gen != gen {
		p.mu.Unlock()
		return false, time.Time{}
	}
	delete(p.live, id)
	p.mu.Unlock()
	p.changed()
	return true, l.lastBeat
}

// reach returns the reachability part of a machine card. stored is the
// machine's stored last-seen time.
func (p *presence) reach(id string, stored *time.Time, broker string) wire.Reachability {
	p.mu.RLock()
	l := p.live[id]
	var r wire.Reachability
	if l != nil {
		since, seen, load, user := l.since, l.lastBeat, l.load1, l.userPresent
		r = wire.Reachability{Online: true, Since: &since, LastSeen: &seen, Broker: broker,
			Transport: l.transport, Load1: &load, UserPresent: &user}
	}
	p.mu.RUnlock()
	if l == nil {
		r.LastSeen = stored
	}
	return r
}

// signals returns id's live signals from its last heartbeat.
func (p *presence) signals(id string) (load1 float64, userPresent, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if l := p.live[id]; l != nil {
		return l.load1, l.userPresent, true
	}
	return 0, false, false
}

// since returns when id's current presence stream opened.
func (p *presence) since(id string) (time.Time, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if l := p.live[id]; l != nil {
		return l.since, true
	}
	return time.Time{}, false
}

// online reports whether id has a presence stream to this broker.
func (p *presence) online(id string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.live[id] != nil
}

// setSessions records id's live sessions; false if id is not online here.
func (p *presence) setSessions(id string, ss []wire.SessionInfo) bool {
	p.mu.Lock()
	l := p.live[id]
	if l != nil {
		l.sessions = ss
	}
	p.mu.Unlock()
	if l == nil {
		return false
	}
	p.changed()
	return true
}

// sessions returns id's live sessions as last reported.
func (p *presence) sessions(id string) []wire.SessionInfo {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if l := p.live[id]; l != nil {
		return l.sessions
	}
	return nil
}

func (p *presence) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// flushAll stores now as the last-seen time of every online machine.
func (p *presence) flushAll(st *store.Store, now time.Time) {
	p.mu.Lock()
	seen := make(map[string]time.Time, len(p.live))
	for id, l := range p.live {
		seen[id] = l.lastBeat
	}
	p.mu.Unlock()
	st.SetLastSeen(seen)
}

// handlePresence serves one presence stream: hello, then heartbeats until
// the stream ends or falls silent for MissedHeartbeats intervals.
func (b *Broker) handlePresence(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer().String()
	// Heartbeats are under 200 bytes; a small buffer saves 3.5 KiB for
	// every connected agent.
	r := wire.NewReaderSize(s, 512)
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hello wire.Hello
	if err := r.Read(wire.MaxControl, &hello); err != nil {
		b.refuse(s, "presence", remote, readCode(err), err.Error(), &wire.HelloReply{})
		return
	}
	if hello.MachineID != remote {
		b.refuse(s, "presence", remote, wire.CodeForbidden,
			"hello names machine "+hello.MachineID+", but the bridge is authenticated as "+remote, &wire.HelloReply{})
		return
	}
	m, ok := b.store.Machine(remote)
	if !ok {
		b.refuse(s, "presence", remote, wire.CodeUnauthorized, "machine is not enrolled on this broker", &wire.HelloReply{})
		return
	}
	now := b.cfg.Now()
	gen := b.live.open(remote, s, now)
	b.queue.kick() // work may be waiting for this machine
	b.announce(remote, true, now)
	b.metrics.online.Set(float64(b.live.count()))
	b.log.Info("machine online", "machine", m.Name, "client", m.Client, "id", remote)
	reason := b.heartbeats(s, r, remote, gen)
	// Store last_seen before the machine leaves the live table, so no card
	// ever shows it offline without one.
	if last, current := b.live.lastBeat(remote, gen); current {
		b.store.SetLastSeen(map[string]time.Time{remote: last})
	}
	if current, _ := b.live.close(remote, gen); current {
		b.announce(remote, false, b.cfg.Now())
		b.metrics.online.Set(float64(b.live.count()))
		b.log.Info("machine offline", "machine", m.Name, "client", m.Client, "id", remote, "reason", reason)
		if reason == "heartbeats missed" {
			// The agent may be frozen or cut off; close its bridge so it
			// reconnects cleanly when it comes back.
			s.Conn().Close()
		}
	}
}

// heartbeats runs the heartbeat loop and returns why it ended.
func (b *Broker) heartbeats(s network.Stream, r *wire.Reader, remote string, gen uint64) string {
	reply := wire.HelloReply{HeartbeatMS: b.cfg.Heartbeat.Milliseconds(), Brokers: b.brokerInfos()}
	s.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := wire.Write(s, &reply); err != nil {
		return "hello reply failed"
	}
	silence := time.Duration(b.cfg.MissedHeartbeats) * b.cfg.Heartbeat
	asked := false // a check-in was requested on this stream
	for {
		s.SetReadDeadline(time.Now().Add(silence))
		var hb wire.Heartbeat
		err := r.Read(wire.MaxControl, &hb)
		switch {
		case errors.Is(err, io.EOF):
			return "closed by agent"
		case errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrTooLarge):
			b.log.Warn("bad heartbeat", "id", remote, "err", err)
			s.Reset()
			return "bad heartbeat"
		case isTimeout(err):
			return "heartbeats missed"
		case err != nil:
			return "bridge lost"
		}
		b.live.beat(remote, gen, &hb, b.cfg.Now())
		ack := wire.HeartbeatAck{Seq: hb.Seq}
		if !asked && b.queue.waitsForCheckIn(remote) {
			// Work is queued for it, judged by a check-in made now: a
			// bridge that reconnected after a network blip brings none.
			ack.CheckIn, asked = true, true
		}
		if !asked && b.behind(remote, hb.CheckInSeq) {
			// The agent has an acknowledged check-in this broker does not
			// hold (its disk was restored from a backup, or replaced):
			// ask for a fresh one now rather than at the next interval.
			ack.CheckIn, asked = true, true
			b.log.Info("asking for a check-in", "id", remote, "agent_seq", hb.CheckInSeq)
		}
		s.SetWriteDeadline(time.Now().Add(silence))
		if err := wire.Write(s, &ack); err != nil {
			return "bridge lost"
		}
	}
}

// behind reports whether the store lacks a check-in the agent says was
// acknowledged.
func (b *Broker) behind(id string, agentSeq uint64) bool {
	if agentSeq == 0 {
		return false
	}
	m, ok := b.store.Machine(id)
	return ok && (m.LastCheckIn == nil || m.LastCheckIn.Seq < agentSeq)
}

// transportName names a bridge's transport from its remote multiaddr.
func transportName(addr string) string {
	switch {
	case strings.Contains(addr, "/quic-v1"):
		return "quic"
	case strings.Contains(addr, "/ws"):
		return "websocket"
	case strings.Contains(addr, "/tcp/"):
		return "tcp"
	}
	return addr
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
