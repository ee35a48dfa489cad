package mesh

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// DialConfig configures the technician's side of a session.
type DialConfig struct {
	// Key is the technician's identity; the agent pins it from the grant.
	Key *identity.Key
	// Transport is wire.TransportAuto (the default), TransportQUIC,
	// TransportRelay or TransportWebRTC (a WebRTC data channel, see
	// ICEServers and WebRTCNet).
	Transport string
	// STUN is the broker's STUN server. Dial sends it a binding request
	// carrying the session's STUN token, so the broker can add the
	// server-reflexive address it observes to the offer. Invalid means
	// none: the agent learns only our host candidates.
	STUN netip.AddrPort
	// Signal carries our parameters to the agent through the broker and
	// returns the grant and the agent's parameters. stunToken ties the
	// STUN request sent at the same moment to this session, so the broker
	// can add the address it observed without a round trip of ours.
	Signal func(ctx context.Context, p wire.PeerParams, sig []byte, stunToken string) (*wire.SessionResult, error)
	// Broker, if set, is the broker asked: the grant must be its. (The
	// agent checks the grant in any case; this stops a stranger posing as
	// the broker from steering the technician.)
	Broker peer.ID
	// Relay opens the relayed path. Nil means no relay.
	Relay Relay
	// PunchTimeout bounds hole punching: direct attempts before giving up
	// (transport quic) or before staying on the relay (auto). Zero means
	// 10 s.
	PunchTimeout time.Duration
	// Pipeline returns from Dial as soon as the claim is sent, without
	// waiting for the agent's verdict: the first channel's data travels
	// with the claim, saving a round trip. A refusal then closes the
	// session, and Claimed reports it.
	Pipeline bool
	// RelayGrace is how long the relay stays open after the move to a
	// direct path, for packets in flight. Zero means 3 s.
	RelayGrace time.Duration
	// Addr is the UDP address of the session socket. Empty means any
	// address, a port the kernel picks.
	Addr string
	// ICEServers are the broker's STUN and TURN servers for transport
	// webrtc (see ICEServers).
	ICEServers []webrtc.ICEServer
	// Net is the network to use. Nil means the host's; tests pass a pion
	// vnet. WebRTCNet is the same for transport webrtc.
	Net       transport.Net
	WebRTCNet transport.Net
	// Logger receives the session's logs. Nil means discard.
	Logger *slog.Logger
}

func (c *DialConfig) setDefaults() {
	if c.Transport == "" {
		c.Transport = wire.TransportAuto
	}
	if c.PunchTimeout <= 0 {
		c.PunchTimeout = 10 * time.Second
	}
	if c.RelayGrace <= 0 {
		c.RelayGrace = 3 * time.Second
	}
	if c.Net == nil {
		c.Net = realNet()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Dial opens a session: signal through the broker, then race the relay
// against direct QUIC to each of the agent's candidates. The first
// connection whose grant the agent accepts wins; a relayed winner moves
// to a direct path when a probe gets through.
func Dial(ctx context.Context, cfg DialConfig) (*Session, error) {
	cfg.setDefaults()
	began := time.Now()
	switch cfg.Transport {
	case wire.TransportAuto, wire.TransportQUIC, wire.TransportRelay:
	case wire.TransportWebRTC:
		return dialWebRTC(ctx, cfg, began)
	default:
		return nil, fmt.Errorf("mesh: transport %q is not auto, quic, webrtc or relay", cfg.Transport)
	}
	d, err := newDialer(cfg, began)
	if err != nil {
		return nil, err
	}
	if err := d.dial(ctx); err != nil {
		return d.fail(err)
	}
	return d.s, nil
}

// dialer is one Dial of a QUIC session, from the socket to the open
// session. The goroutine running Dial writes its fields; the goroutines it
// starts only read fields written before they start.
type dialer struct {
	cfg   DialConfig
	began time.Time
	udp   net.PacketConn
	hub   *memHub  // non-nil when the host has no UDP: relay only (memsock.go)
	pc    pathConn // udp as quic-go sees it
	sock  *socket
	// sctx is the session's context: it ends when the session closes, or
	// when Dial fails.
	sctx context.Context
	s    *Session
	pr   *prober // nil when not punching
}

// newDialer opens the session socket and starts reading it.
func newDialer(cfg DialConfig, began time.Time) (*dialer, error) {
	var hub *memHub
	udp, err := listenUDP(cfg.Net, cfg.Addr)
	if err != nil {
		if !relayOnlyAllowed(cfg.Addr) {
			return nil, fmt.Errorf("mesh: session socket: %w", err)
		}
		if cfg.Transport == wire.TransportQUIC {
			return nil, fmt.Errorf("mesh: session socket: %w (with no UDP only the relay works: --transport relay or auto)", err)
		}
		// No UDP here: the session runs over the relay only.
		cfg.Logger.Info("no UDP socket: the session uses the broker's relay only", "err", err)
		hub = newMemHub()
		if udp, err = hub.listen(); err != nil {
			return nil, fmt.Errorf("mesh: session socket: %w", err)
		}
	}
	pc := newPathConn(udp)
	d := &dialer{cfg: cfg, began: began, udp: udp, hub: hub, pc: pc, sock: newSocket(udp, pc, cfg.Logger)}
	var cancel context.CancelFunc
	d.sctx, cancel = context.WithCancel(context.Background())
	d.s = &Session{cancel: cancel, changed: make(chan struct{}), pings: map[uint64]chan struct{}{}}
	d.s.wg.Go(func() { d.sock.run(d.sctx) })
	return d, nil
}

// dial runs the phases of Dial in order: gather, signal, race, claim,
// start.
func (d *dialer) dial(ctx context.Context) error {
	params, token := d.gather()
	res, err := d.signal(ctx, params, token)
	if err != nil {
		return err
	}
	tlsConf, err := d.tlsConfig()
	if err != nil {
		return err
	}
	targets := answerTargets(res.Answer)
	if d.hub != nil {
		targets = nil // no UDP to reach them with
	}
	d.startProbing(params, res.Answer, targets)
	w, err := d.race(ctx, res, targets, tlsConf)
	if err != nil {
		return err
	}
	if err := d.claim(ctx, w); err != nil {
		return err
	}
	d.start(res, w)
	return nil
}

// fail undoes a Dial that did not open a session and returns err: the
// session's context ends, the socket closes, and once every goroutine is
// done the cleanups run.
func (d *dialer) fail(err error) (*Session, error) {
	d.s.cancel()
	d.sock.tr.Close()
	d.udp.Close()
	d.s.wg.Wait()
	for _, f := range d.s.cleanup {
		f()
	}
	return nil, err
}

// gather makes our parameters: probe credentials and, unless the session
// is relay-only, our host candidates, plus a STUN token whose binding
// request lets the broker observe our server-reflexive address.
func (d *dialer) gather() (params wire.PeerParams, token string) {
	params = wire.PeerParams{Ufrag: randHex(8), Pwd: randHex(16)}
	if d.cfg.Transport == wire.TransportRelay || d.hub != nil {
		return params, ""
	}
	for _, a := range d.sock.hostCandidates(d.cfg.Net) {
		params.Candidates = append(params.Candidates, wire.Candidate{Kind: wire.CandHost, Addr: a.String()})
	}
	if d.cfg.STUN.IsValid() {
		token = randHex(12)
		sendTokenBinding(d.sock, d.cfg.STUN, token)
	}
	if len(params.Candidates) > wire.MaxCandidates-1 {
		params.Candidates = params.Candidates[:wire.MaxCandidates-1]
	}
	return params, token
}

// sendTokenBinding sends one STUN binding request carrying token to the
// broker's STUN server, twice for loss. The broker matches it to the
// session request that carries the same token.
func sendTokenBinding(sock *socket, server netip.AddrPort, token string) {
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(TokenPrefix+token), stun.Fingerprint)
	if err != nil {
		return
	}
	sock.writeTo(m.Raw, server)
	sock.writeTo(m.Raw, server)
}

// TokenPrefix marks STUN usernames that carry a session's STUN token.
const TokenPrefix = "readymesh-token:"

// signal signs our parameters, has the broker carry them to the agent,
// and checks the answer: the grant names us, and the agent's parameters
// are the granted machine's.
func (d *dialer) signal(ctx context.Context, params wire.PeerParams, token string) (*wire.SessionResult, error) {
	sig, err := SignParams(d.cfg.Key.Priv, params)
	if err != nil {
		return nil, fmt.Errorf("mesh: sign parameters: %w", err)
	}
	res, err := d.cfg.Signal(ctx, params, sig, token)
	if err != nil {
		return nil, err
	}
	g, machine, err := CheckResult(res, d.cfg.Key.ID, d.cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	d.s.ID, d.s.Machine, d.s.Mode, d.s.Grant = g.Session, machine, g.Mode, g
	return res, nil
}

// tlsConfig is the TLS configuration of every attempt: our key, and a pin
// on the granted machine's.
func (d *dialer) tlsConfig() (*tls.Config, error) {
	cert, err := certificate(d.cfg.Key.Priv)
	if err != nil {
		return nil, err
	}
	return clientTLS(cert, d.s.ID, d.s.Machine), nil
}

// claim claims the grant on the winning connection only. With Pipeline
// the claim travels with whatever the caller sends first, and the agent
// serves that only once the claim is accepted; without it, Dial waits for
// the agent's verdict.
func (d *dialer) claim(ctx context.Context, w *won) error {
	s := d.s
	s.conn = w.conn
	st, err := sendClaim(ctx, s.conn, s.ID)
	if err != nil {
		s.conn.CloseWithError(1, "claim failed")
		w.closePump()
		return fmt.Errorf("mesh: claim session %s: %w", s.ID, err)
	}
	s.claimed = make(chan struct{})
	if d.cfg.Pipeline {
		s.wg.Go(func() { s.readClaim(st) })
		return nil
	}
	s.readClaim(st)
	if s.claimErr != nil {
		s.conn.CloseWithError(1, "claim refused")
		w.closePump()
		return fmt.Errorf("mesh: session %s: %w", s.ID, s.claimErr)
	}
	return nil
}

// start sets the session going on the winning path: its path and cleanup,
// the reader of ping answers, the watch on its relay and, for a relayed
// winner, the move to a direct path.
func (d *dialer) start(res *wire.SessionResult, w *won) {
	s, relay := d.s, w.pump
	s.Setup = time.Since(d.began)
	if w.a.relayed {
		s.path = Path{Kind: wire.PathRelayed, Via: res.RelayName}
	} else {
		s.path = Path{Kind: wire.PathDirectQUIC, Remote: w.a.addr.String()}
	}
	s.cleanup = append(s.cleanup, func() {
		if relay != nil {
			relay.close()
		}
		d.sock.tr.Close()
		d.udp.Close()
	})
	s.wg.Go(func() { s.readDatagrams(d.sctx) })
	if relay != nil {
		s.wg.Go(func() { s.closeWithRelay(d.sctx, relay) })
	}
	if w.a.relayed && d.pr != nil {
		s.wg.Go(func() { s.upgrade(d.sctx, d.cfg, d.pc, d.pr, w.a.addr, relay) })
	}
	d.cfg.Logger.Info("session open", "session", s.ID, "machine", s.Grant.Machine, "mode", s.Mode, "path", s.path.String(), "setup", s.Setup)
}

// closeWithRelay ends the session at once when its relay ends (the
// broker's limits, a broker restart) while the session still uses it,
// rather than after QUIC's idle timeout.
func (s *Session) closeWithRelay(ctx context.Context, relay *pump) {
	select {
	case <-ctx.Done():
	case <-relay.done:
		if s.Path().Kind == wire.PathRelayed {
			s.conn.CloseWithError(0, "the relay closed")
		}
	}
}
