package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
	"github.com/quic-go/quic-go"

	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// DialConfig configures the technician's side of a session.
type DialConfig struct {
	// Key is the technician's identity; the agent pins it from the grant.
	Key *identity.Key
	// Transport is wire.TransportAuto (the default), TransportQUIC or
	// TransportRelay. WebRTC sessions are opened with package rtc.
	Transport string
	// STUN is the broker's STUN server. Invalid means no server-reflexive
	// candidate of our own; the broker still observes one from StunToken.
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
	Logger    *slog.Logger
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

// attempt is one way of reaching the agent.
type attempt struct {
	addr    netip.AddrPort // a candidate, or the relay's virtual address
	relayed bool
}

type won struct {
	a    attempt
	conn *quic.Conn
	pump *pump // the relay's, for the relayed attempt
	err  error
}

// Dial opens a session: signal through the broker, then race the relay
// against direct QUIC to each of the agent's candidates. The first
// connection whose grant the agent accepts wins; a relayed winner moves
// to a direct path when a probe gets through.
func Dial(ctx context.Context, cfg DialConfig) (*Session, error) {
	cfg.setDefaults()
	start := time.Now()
	switch cfg.Transport {
	case wire.TransportAuto, wire.TransportQUIC, wire.TransportRelay:
	case wire.TransportWebRTC:
		return dialWebRTC(ctx, cfg, start)
	default:
		return nil, fmt.Errorf("mesh: transport %q is not auto, quic, webrtc or relay", cfg.Transport)
	}
	udp, err := listenUDP(cfg.Net, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mesh: session socket: %w", err)
	}
	pc := newPathConn(udp)
	sock := newSocket(udp, pc, cfg.Logger)
	sctx, cancel := context.WithCancel(context.Background())
	s := &Session{cancel: cancel, changed: make(chan struct{}), pings: map[uint64]chan struct{}{}}
	fail := func(err error) (*Session, error) {
		cancel()
		sock.tr.Close()
		udp.Close()
		s.wg.Wait()
		for _, f := range s.cleanup {
			f()
		}
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sock.run(sctx)
	}()

	ufrag, pwd := randHex(8), randHex(16)
	params := wire.PeerParams{Ufrag: ufrag, Pwd: pwd}
	token := ""
	if cfg.Transport != wire.TransportRelay {
		for _, a := range sock.hostCandidates(cfg.Net) {
			params.Candidates = append(params.Candidates, wire.Candidate{Kind: wire.CandHost, Addr: a.String()})
		}
		if cfg.STUN.IsValid() {
			token = randHex(12)
			sendTokenBinding(sock, cfg.STUN, token)
		}
		if len(params.Candidates) > wire.MaxCandidates-1 {
			params.Candidates = params.Candidates[:wire.MaxCandidates-1]
		}
	}
	sig, err := SignParams(cfg.Key.Priv, params)
	if err != nil {
		return fail(fmt.Errorf("mesh: sign parameters: %w", err))
	}
	res, err := cfg.Signal(ctx, params, sig, token)
	if err != nil {
		return fail(err)
	}
	g, machine, err := CheckResult(res, cfg.Key.ID, cfg.Broker)
	if err != nil {
		return fail(fmt.Errorf("mesh: %w", err))
	}
	s.ID, s.Machine, s.Mode, s.Grant = g.Session, machine, g.Mode, g

	cert, err := certificate(cfg.Key.Priv)
	if err != nil {
		return fail(err)
	}
	tlsConf := clientTLS(cert, g.Session, machine)

	var targets []netip.AddrPort
	for _, c := range res.Answer.Candidates {
		if ap, err := netip.ParseAddrPort(c.Addr); err == nil {
			targets = append(targets, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
	var pr *prober
	if cfg.Transport != wire.TransportRelay && res.Answer.Ufrag != "" {
		pr = sock.newProber(ufrag, pwd, res.Answer.Ufrag, res.Answer.Pwd, targets)
		s.cleanup = append(s.cleanup, pr.close)
		pctx, pcancel := context.WithTimeout(sctx, cfg.PunchTimeout)
		s.cleanup = append(s.cleanup, pcancel)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			pr.run(pctx, 0)
		}()
	}

	// Race the attempts.
	rctx, rcancel := context.WithTimeout(ctx, cfg.PunchTimeout)
	defer rcancel()
	results := make(chan won, len(targets)+1)
	n := 0
	if cfg.Transport != wire.TransportRelay {
		for _, t := range targets {
			n++
			go func() {
				a := attempt{addr: t}
				conn, err := sock.tr.Dial(rctx, net.UDPAddrFromAddrPort(a.addr), tlsConf, quicConfig())
				results <- won{a: a, conn: conn, err: err}
			}()
		}
	}
	v := virtualAddr(1)
	if cfg.Transport != wire.TransportQUIC && res.Relay && cfg.Relay != nil {
		n++
		go func() {
			a := attempt{addr: v, relayed: true}
			stream, err := cfg.Relay(rctx, g.Session)
			if err != nil {
				results <- won{a: a, err: fmt.Errorf("relay: %w", err)}
				return
			}
			p, err := newPump(cfg.Net, stream, sock.port())
			if err != nil {
				stream.Close()
				results <- won{a: a, err: err}
				return
			}
			go p.run()
			pc.setRoute(v, p.addr())
			conn, err := sock.tr.Dial(rctx, net.UDPAddrFromAddrPort(v), tlsConf, quicConfig())
			results <- won{a: a, conn: conn, pump: p, err: err}
		}()
	}
	if n == 0 {
		return fail(fmt.Errorf("mesh: no path to try: the agent gave no candidates and no relay is offered"))
	}
	// The first connection wins; the rest are cancelled and cleaned up in
	// the background, so a slow loser (a relay the agent never joins)
	// does not hold up the winner.
	var winner *won
	var errs []error
	for i := 0; i < n && winner == nil; i++ {
		r := <-results
		if r.err != nil {
			if r.pump != nil {
				r.pump.close()
			}
			errs = append(errs, fmt.Errorf("%s: %w", describe(r.a), r.err))
			continue
		}
		winner = &r
		rcancel()
		go func(left int) {
			for range left {
				r := <-results
				if r.conn != nil {
					r.conn.CloseWithError(0, "another path won")
				}
				if r.pump != nil {
					r.pump.close()
				}
			}
		}(n - i - 1)
	}
	if winner == nil {
		return fail(fmt.Errorf("mesh: no path to %s: %w", g.Machine, errors.Join(errs...)))
	}
	if !winner.a.relayed {
		pc.dropRoute(v)
	}
	relayPump := winner.pump
	s.conn = winner.conn
	// Claim the grant on the winning connection only. With Pipeline the
	// claim travels with whatever the caller sends first, and the agent
	// serves that only once the claim is accepted.
	st, err := sendClaim(ctx, s.conn, g.Session)
	if err != nil {
		s.conn.CloseWithError(1, "claim failed")
		if relayPump != nil {
			relayPump.close()
		}
		return fail(fmt.Errorf("mesh: claim session %s: %w", g.Session, err))
	}
	s.claimed = make(chan struct{})
	if cfg.Pipeline {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.readClaim(st)
		}()
	} else {
		s.readClaim(st)
		if s.claimErr != nil {
			s.conn.CloseWithError(1, "claim refused")
			if relayPump != nil {
				relayPump.close()
			}
			return fail(fmt.Errorf("mesh: session %s: %w", g.Session, s.claimErr))
		}
	}
	s.Setup = time.Since(start)
	if winner.a.relayed {
		s.path = Path{Kind: wire.PathRelayed, Via: res.RelayName}
	} else {
		s.path = Path{Kind: wire.PathDirectQUIC, Remote: winner.a.addr.String()}
	}
	s.cleanup = append(s.cleanup, func() {
		if relayPump != nil {
			relayPump.close()
		}
		sock.tr.Close()
		udp.Close()
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.readDatagrams(sctx)
	}()
	if relayPump != nil {
		// A relay that ends (the broker's limits, a broker restart) while
		// the session still uses it ends the session at once rather than
		// after QUIC's idle timeout.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case <-sctx.Done():
			case <-relayPump.done:
				if s.Path().Kind == wire.PathRelayed {
					s.conn.CloseWithError(0, "the relay closed")
				}
			}
		}()
	}
	if winner.a.relayed && pr != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.upgrade(sctx, cfg, pc, pr, winner.a.addr, relayPump)
		}()
	}
	cfg.Logger.Info("session open", "session", s.ID, "machine", g.Machine, "mode", s.Mode, "path", s.path.String(), "setup", s.Setup)
	return s, nil
}

func describe(a attempt) string {
	if a.relayed {
		return "relay"
	}
	return "direct " + a.addr.String()
}

// upgrade moves a relayed session to the direct path once a probe is
// answered: the route behind the connection's virtual address changes, the
// agent's QUIC server validates the new path and migrates, and the relay
// closes after a grace period. The move is confirmed when pings are
// answered while nothing more arrives through the relay.
func (s *Session) upgrade(ctx context.Context, cfg DialConfig, pc pathConn, pr *prober, v netip.AddrPort, relay *pump) {
	t := time.NewTimer(cfg.PunchTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
		cfg.Logger.Info("no direct path; staying on the relay", "session", s.ID)
		return
	case <-pr.Found():
	}
	addr := pr.Addr()
	if !addr.Addr().Is4() {
		// The virtual address is IPv4; quic-go's ECN control messages must
		// match the family of the address it thinks it sends to.
		cfg.Logger.Info("direct path is IPv6; staying on the relay", "session", s.ID, "remote", addr)
		return
	}
	pc.setRoute(v, addr)
	quiet := 0
	for range 50 {
		before := relay.in.Load()
		pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := s.Ping(pctx)
		pcancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil && relay.in.Load() == before {
			if quiet++; quiet >= 2 {
				s.setPath(Path{Kind: wire.PathDirectQUIC, Remote: addr.String()})
				cfg.Logger.Info("session moved to a direct path", "session", s.ID, "remote", addr)
				break
			}
		} else {
			quiet = 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s.Path().Kind != wire.PathDirectQUIC {
		cfg.Logger.Info("the agent did not move to the direct path; staying on the relay", "session", s.ID, "remote", addr)
		pc.setRoute(v, relay.addr())
		return
	}
	g := time.NewTimer(cfg.RelayGrace)
	defer g.Stop()
	select {
	case <-ctx.Done():
	case <-g.C:
		relay.close()
	}
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
