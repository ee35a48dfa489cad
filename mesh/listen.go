package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/transport/v5"
	"github.com/quic-go/quic-go"

	"github.com/readymesh/readymesh/mesh/rtc"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// ListenConfig configures the agent's side of sessions.
type ListenConfig struct {
	// Key is the agent's identity: the machine ID grants name.
	Key *identity.Key
	// Addr is the session socket's UDP address. Empty means ":0", a port
	// the kernel picks. A fixed port lets a firewall admit it.
	Addr string
	// Trusted reports whether a broker may issue grants to this agent.
	Trusted func(peer.ID) bool
	// MarkUsed records a grant as used, durably, before the session is
	// accepted. It returns ErrGrantUsed if it was used before. Nil keeps
	// the record in memory only.
	MarkUsed func(session string, expires time.Time) error
	// Relay opens the relayed path to broker, the one that offered the
	// session.
	Relay func(ctx context.Context, broker peer.ID, session string) (io.ReadWriteCloser, error)
	// OnChange is called with the live sessions whenever they change
	// (opened, closed, moved to another path).
	OnChange func([]wire.SessionInfo)
	// Consent, if set, is asked before an offer is answered; it blocks
	// until the person at the machine approves (nil) or refuses or does
	// not answer (an error the technician reads). A grant that waited for
	// consent stays valid for its full lifetime from the approval.
	Consent func(ctx context.Context, g wire.Grant) error
	// Channels are the agent's channel handlers beyond the built-in test
	// channels (echo, sink, source): terminal, exec, files.
	Channels map[string]ChannelHandler
	// PunchTimeout bounds probing per session. Zero means 10 s. An offered
	// session waits for its technician until its grant expires and
	// PunchTimeout more.
	PunchTimeout time.Duration
	// Logger receives the listener's logs. Nil means discard.
	Logger *slog.Logger
	// Now is the clock grants are checked against. Nil means time.Now.
	Now func() time.Time
	// Net is the network to use. Nil means the host's; tests pass a pion
	// vnet. WebRTCNet is the same for WebRTC sessions.
	Net       transport.Net
	WebRTCNet transport.Net
}

// MaxSessions bounds the sessions one agent has offered or open at once
// (the broker's session status holds up to 64).
const MaxSessions = 64

// ErrTooManySessions refuses an offer beyond MaxSessions.
var ErrTooManySessions = errors.New("too many sessions")

// Listener accepts sessions for one agent.
type Listener struct {
	// Immutable after Listen.
	cfg  ListenConfig
	log  *slog.Logger
	udp  net.PacketConn
	hub  *memHub // non-nil when the host has no UDP: relayed sessions only
	sock *socket
	ln   *quic.Listener
	cert tls.Certificate

	// ctx ends at Close; every goroutine the listener starts is counted
	// in wg, which Close waits for.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards all following fields, and the fields of pendingSession
	// and agentSession that say so.
	mu      sync.Mutex
	pending map[string]*pendingSession // offers by session ID, until their context ends
	active  map[string]*agentSession   // sessions whose claim was accepted, by session ID
	// used records every grant claimed here, by session ID, with its
	// expiry: the single-use check that holds even when MarkUsed is nil.
	// pruneUsedLocked forgets expired ones.
	used map[string]time.Time
	// revoked holds when each revoked technician was revoked (Revoke).
	revoked map[peer.ID]time.Time
	// srflx is the server-reflexive address srflxSrv, a broker's STUN
	// server, reported at srflxAt (see Reflexive).
	srflx    netip.AddrPort
	srflxAt  time.Time
	srflxSrv netip.AddrPort
}

// pendingSession is an offer the agent answered, waiting for the
// technician's claim. It stays in Listener.pending until its context ends:
// when the grant lapses or the session ends.
type pendingSession struct {
	// Immutable once the offer is reserved.
	broker  peer.ID // the broker that carried the offer, and relays it
	tech    peer.ID
	relayBy string // the relaying broker's name, for the session's path

	// ctx is the offer's context; Offer sets it before it starts the
	// offer's goroutines, which only read it.
	ctx context.Context

	// Listener.mu guards the following fields.
	grant  wire.Grant // Expires moves if the grant waited for consent
	cancel context.CancelFunc
	prober *prober
	pump   *pump
}

// agentSession is a session whose claim the agent accepted.
type agentSession struct {
	// Immutable once listed in Listener.active.
	grant wire.Grant
	conn  *quic.Conn   // QUIC sessions
	rtc   *rtc.Session // WebRTC sessions
	pump  *pump        // the relay's, for a QUIC session offered a relay
	via   string       // the relaying broker's name

	info wire.SessionInfo // Listener.mu guards it
}

// Listen opens the session socket and starts accepting.
func Listen(cfg ListenConfig) (*Listener, error) {
	if cfg.Key == nil {
		return nil, errors.New("mesh: ListenConfig.Key is nil")
	}
	cfg.setDefaults()
	l := &Listener{cfg: cfg, log: cfg.Logger, pending: map[string]*pendingSession{},
		active: map[string]*agentSession{}, used: map[string]time.Time{}}
	var err error
	if l.cert, err = certificate(cfg.Key.Priv); err != nil {
		return nil, err
	}
	if l.udp, err = listenUDP(cfg.Net, cfg.Addr); err != nil {
		if !relayOnlyAllowed(cfg.Addr) {
			return nil, fmt.Errorf("mesh: session socket: %w", err)
		}
		// No UDP at all: relayed sessions only (memsock.go). Said once,
		// here; the offers then carry no candidates.
		l.log.Warn("no UDP socket for live sessions: they will run over the broker's relay only, on the bridge",
			"err", err)
		l.hub = newMemHub()
		if l.udp, err = l.hub.listen(); err != nil {
			return nil, fmt.Errorf("mesh: session socket: %w", err)
		}
	}
	l.sock = newSocket(l.udp, l.udp, l.log)
	// No session tickets: a resumed handshake skips VerifyPeerCertificate,
	// and the pin on the granted technician must hold for every connection.
	l.ln, err = l.sock.tr.Listen(&tls.Config{MinVersion: tls.VersionTLS13, GetConfigForClient: l.tlsFor,
		SessionTicketsDisabled: true}, quicConfig())
	if err != nil {
		l.udp.Close()
		return nil, fmt.Errorf("mesh: quic listen: %w", err)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Go(func() { l.sock.run(l.ctx) })
	l.wg.Go(l.accept)
	return l, nil
}

func (c *ListenConfig) setDefaults() {
	if c.PunchTimeout <= 0 {
		c.PunchTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Net == nil {
		c.Net = realNet()
	}
}

// Port is the session socket's UDP port.
func (l *Listener) Port() int { return l.sock.port() }

// Close stops accepting, ends every session and closes the socket.
//
// Order: cancel ctx, from which every offer's context and the socket's
// reader derive; stop accepting; end the sessions; close the transport and
// the socket; then wait for every goroutine the listener started.
func (l *Listener) Close() error {
	l.cancel()
	l.ln.Close()
	l.mu.Lock()
	for _, p := range l.pending {
		p.cancel()
	}
	for _, a := range l.active {
		if a.conn != nil {
			a.conn.CloseWithError(0, "agent stopping")
		} else {
			a.rtc.Close()
		}
	}
	l.mu.Unlock()
	l.sock.tr.Close()
	l.udp.Close()
	l.wg.Wait()
	return nil
}

// Reflexive refreshes the server-reflexive address seen by a broker's
// STUN server. The agent calls it periodically, so an offer is answered
// without a STUN round trip and the NAT mapping stays warm.
func (l *Listener) Reflexive(ctx context.Context, server netip.AddrPort) (netip.AddrPort, error) {
	if l.hub != nil {
		return netip.AddrPort{}, errNoUDP // relay only: there is no mapping to find or keep warm
	}
	a, err := l.sock.reflexive(ctx, server)
	if err != nil {
		return a, err
	}
	l.mu.Lock()
	l.srflx, l.srflxAt, l.srflxSrv = a, l.cfg.Now(), server
	l.mu.Unlock()
	return a, nil
}

// Sessions lists the live sessions.
func (l *Listener) Sessions() []wire.SessionInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]wire.SessionInfo, 0, len(l.active))
	for _, a := range l.active {
		out = append(out, a.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// changed reports the live sessions to OnChange.
func (l *Listener) changed() {
	if l.cfg.OnChange != nil {
		l.cfg.OnChange(l.Sessions())
	}
}
