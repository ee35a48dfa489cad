// Package relay is the broker's half of the data path's last resort: it
// splices the two halves of a relayed session. A relayed session is a
// technician's and an agent's bridge streams joined byte for byte; the
// bytes are the session's QUIC packets, encrypted end to end, so the broker
// relays ciphertext it cannot read.
//
// Unlike libp2p's circuit relay, whose defaults cut a connection after 2
// minutes or 128 KiB, a session lasts as long as the technician needs;
// limits are the operator's (Config). A slot is offered when the broker
// grants a session that may use the relay (Expect); each side then opens
// /readymesh/relay/1.0.0 naming the session, and the second to arrive runs
// the splice.
package relay

import (
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/peer/wire"
)

// Config bounds what the relay carries. Zero values mean the documented
// defaults.
type Config struct {
	// MaxSessions bounds the sessions relayed, or offered a slot, at once.
	// Zero means 1024.
	MaxSessions int
	// MaxPerPeer bounds the relayed (and offered) sessions of one
	// technician or agent. Zero means 16.
	MaxPerPeer int
	// MaxBytes bounds the bytes one relayed session may move, both ways.
	// Zero means no limit: file copies and long sessions are the job.
	MaxBytes int64
	// MaxDuration bounds a relayed session's life. Zero means no limit.
	MaxDuration time.Duration
	// Logger receives the relay's logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Metrics, if not nil, receives readymesh_relay_sessions and
	// readymesh_relay_bytes_total.
	Metrics prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.MaxSessions <= 0 {
		c.MaxSessions = 1024
	}
	if c.MaxPerPeer <= 0 {
		c.MaxPerPeer = 16
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// joinWait is how long the first half of a session waits for the second.
const joinWait = 15 * time.Second

// Spec is how relay streams open: the hello within joinWait.
var Spec = serve.Spec{Name: "relay", Deadline: joinWait, MaxRequest: wire.MaxControl,
	Reply: func() wire.Refusable { return &wire.RelayReady{} }}

// Relay splices relayed sessions.
type Relay struct {
	cfg    Config
	active prometheus.Gauge
	bytes  prometheus.Counter

	mu      sync.Mutex
	slots   map[string]*slot // mu guards all following fields; by session ID
	perPeer map[peer.ID]int  // relayed sessions spliced now, per peer
	spliced int              // sessions spliced now
}

// slot is a session offered the relay, until both halves have joined.
type slot struct {
	tech, agent peer.ID
	expires     time.Time
	waiting     network.Stream // the first half, until the second comes
	waitingTech bool
	joined      chan struct{} // closed when spliced
	done        chan struct{} // closed when the splice ends
}

// New returns a Relay.
func New(cfg Config) *Relay {
	cfg.setDefaults()
	r := &Relay{cfg: cfg, slots: map[string]*slot{}, perPeer: map[peer.ID]int{},
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "readymesh_relay_sessions",
			Help: "Sessions this broker relays now."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "readymesh_relay_bytes_total",
			Help: "Bytes relayed for sessions (end-to-end encrypted; both directions)."}),
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(r.active, r.bytes)
	}
	return r
}

// Expect offers session a slot, within the limits, until expires.
func (r *Relay) Expect(session string, tech, agent peer.ID, expires time.Time) *wire.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropExpiredLocked(r.cfg.Now())
	if r.spliced+len(r.slots) >= r.cfg.MaxSessions {
		return wire.Errorf(wire.CodeUnavailable, "relay full: %d sessions (RelayMaxSessions)", r.cfg.MaxSessions)
	}
	for _, p := range []peer.ID{tech, agent} {
		if r.sessionsOfLocked(p) >= r.cfg.MaxPerPeer {
			return wire.Errorf(wire.CodeUnavailable, "relay limit for %s: %d sessions (RelayMaxPerPeer)", p, r.cfg.MaxPerPeer)
		}
	}
	r.slots[session] = &slot{tech: tech, agent: agent, expires: expires, joined: make(chan struct{}), done: make(chan struct{})}
	return nil
}

// Forget withdraws session's offered slot.
func (r *Relay) Forget(session string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.slots, session)
}

// dropExpiredLocked forgets slots offered and never joined by either side.
func (r *Relay) dropExpiredLocked(now time.Time) {
	for id, s := range r.slots {
		if now.After(s.expires) && s.waiting == nil {
			delete(r.slots, id)
		}
	}
}

// sessionsOfLocked counts p's spliced sessions and offered slots: offered
// slots count too, so nobody fills the relay with offers never joined.
func (r *Relay) sessionsOfLocked(p peer.ID) int {
	n := r.perPeer[p]
	for _, s := range r.slots {
		if s.tech == p || s.agent == p {
			n++
		}
	}
	return n
}
