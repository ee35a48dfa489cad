package reach

import (
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/peer/wire"
)

// table is the presence table: the machines with a presence stream open
// to this broker now.
type table struct {
	mu   sync.RWMutex
	gen  uint64          // mu guards all following fields; the last stream's generation
	rows map[string]*row // machine ID → its current presence stream
}

// row is one machine's open presence stream.
type row struct {
	gen       uint64 // tells a replaced stream from the current one
	stream    network.Stream
	since     time.Time
	lastBeat  time.Time
	transport string // the bridge's transport: quic, tcp or websocket

	// From the hello: what happened while the agent was away, and since
	// when it has found UDP blocked.
	returned   *wire.Returned
	udpBlocked *time.Time
	// leaving is the notice the agent sent before it closes the stream.
	leaving *wire.Leaving
}

// open registers a new presence stream for id, replacing (and resetting)
// an older one: an agent that reconnects after a silent loss must not wait
// for its old stream to time out.
func (t *table) open(id string, s network.Stream, now time.Time, hello *wire.Hello) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	if old := t.rows[id]; old != nil {
		old.stream.Reset()
	}
	r := &row{gen: t.gen, stream: s, since: now, lastBeat: now,
		transport: transportName(s.Conn().RemoteMultiaddr().String())}
	if hello != nil {
		r.returned = hello.Returned
		if hello.UDPBlockedSince != nil && r.transport != "quic" {
			at := hello.UDPBlockedSince.UTC()
			r.udpBlocked = &at
		}
	}
	t.rows[id] = r
	return t.gen
}

// beat records a heartbeat on stream gen of id, and the leaving notice
// it carries (nil: none, or no longer).
func (t *table) beat(id string, gen uint64, now time.Time, leaving *wire.Leaving) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.rows[id]; r != nil && r.gen == gen {
		r.lastBeat = now
		r.leaving = leaving // a later heartbeat without one: the agent stayed
	}
}

// lastBeat returns when stream gen of id last beat, if it is current.
func (t *table) lastBeat(id string, gen uint64) (time.Time, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if r := t.rows[id]; r != nil && r.gen == gen {
		return r.lastBeat, true
	}
	return time.Time{}, false
}

// close removes stream gen of id and returns it, if it was the current
// one.
func (t *table) close(id string, gen uint64) (row, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rows[id]
	if r == nil || r.gen != gen {
		return row{}, false
	}
	delete(t.rows, id)
	return *r, true
}

// reach returns id's reachability through this broker, if it is online
// here.
func (t *table) reach(id, broker string) (wire.Reachability, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r := t.rows[id]
	if r == nil {
		return wire.Reachability{}, false
	}
	since, seen := r.since, r.lastBeat
	return wire.Reachability{Online: true, Since: &since, LastSeen: &seen, Broker: broker, Transport: r.transport,
		Returned: r.returned, UDPBlockedSince: r.udpBlocked}, true
}

func (t *table) since(id string) (time.Time, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if r := t.rows[id]; r != nil {
		return r.since, true
	}
	return time.Time{}, false
}

func (t *table) online(id string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.rows[id] != nil
}

func (t *table) count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.rows)
}

// lastBeats returns every online machine's last heartbeat.
func (t *table) lastBeats() map[string]time.Time {
	t.mu.RLock()
	defer t.mu.RUnlock()
	seen := make(map[string]time.Time, len(t.rows))
	for id, r := range t.rows {
		seen[id] = r.lastBeat
	}
	return seen
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
