package mesh

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
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
	// PunchTimeout bounds probing per session. Zero means 10 s.
	PunchTimeout time.Duration
	// PendingTimeout is how long an offered session waits for its
	// technician. Zero means the grant's expiry.
	Logger *slog.Logger
	Now    func() time.Time
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
	cfg  ListenConfig
	log  *slog.Logger
	udp  net.PacketConn
	sock *socket
	ln   *quic.Listener
	cert tls.Certificate

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	pending  map[string]*pendingSession
	active   map[string]*agentSession
	used     map[string]time.Time // in-memory single-use record when MarkUsed is nil
	srflx    netip.AddrPort
	srflxAt  time.Time
	srflxSrv netip.AddrPort
}

type pendingSession struct {
	broker  peer.ID // the broker that carried the offer, and relays it
	grant   wire.Grant
	tech    peer.ID
	prober  *prober
	pump    *pump
	relayBy string
	cancel  context.CancelFunc
}

type agentSession struct {
	info  wire.SessionInfo
	grant wire.Grant
	conn  *quic.Conn   // QUIC sessions
	rtc   *rtc.Session // WebRTC sessions
	pump  *pump
	via   string
}

// Listen opens the session socket and starts accepting.
func Listen(cfg ListenConfig) (*Listener, error) {
	if cfg.Key == nil {
		return nil, errors.New("mesh: ListenConfig.Key is nil")
	}
	if cfg.PunchTimeout <= 0 {
		cfg.PunchTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{cfg: cfg, log: cfg.Logger, pending: map[string]*pendingSession{},
		active: map[string]*agentSession{}, used: map[string]time.Time{}}
	var err error
	if l.cert, err = certificate(cfg.Key.Priv); err != nil {
		return nil, err
	}
	if cfg.Net == nil {
		cfg.Net = realNet()
		l.cfg.Net = cfg.Net
	}
	if l.udp, err = listenUDP(cfg.Net, cfg.Addr); err != nil {
		return nil, fmt.Errorf("mesh: session socket: %w", err)
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
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		l.sock.run(l.ctx)
	}()
	go func() {
		defer l.wg.Done()
		l.accept()
	}()
	return l, nil
}

// Port is the session socket's UDP port.
func (l *Listener) Port() int { return l.sock.port() }

// Close stops accepting, ends every session and closes the socket.
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
	a, err := l.sock.reflexive(ctx, server)
	if err != nil {
		return a, err
	}
	l.mu.Lock()
	l.srflx, l.srflxAt, l.srflxSrv = a, l.cfg.Now(), server
	l.mu.Unlock()
	return a, nil
}

// Offer handles a session offer that broker carried: it checks the grant,
// starts probing and the relay, and returns the agent's parameters.
func (l *Listener) Offer(ctx context.Context, broker peer.ID, brokerName string, o *wire.Offer, stunServer netip.AddrPort) (*wire.PeerParams, error) {
	g, err := VerifyGrant(o.Grant, l.cfg.Key.ID, l.cfg.Trusted, l.cfg.Now())
	if err != nil {
		return nil, err
	}
	if g.Issuer != broker.String() {
		// Grants travel only from their issuer; another broker carrying
		// one is replaying it.
		return nil, fmt.Errorf("%w: issued by %s, carried by %s", ErrGrantIssuer, g.Issuer, broker)
	}
	tech, err := peer.Decode(g.Technician)
	if err != nil {
		return nil, fmt.Errorf("%w: technician: %v", ErrGrantForged, err)
	}
	if err := checkTechnicianParams(g, tech, o); err != nil {
		return nil, err
	}
	if l.isUsed(g.Session) {
		return nil, fmt.Errorf("%w: session %s", ErrGrantUsed, g.Session)
	}
	if o.Transport == wire.TransportWebRTC {
		if l.cfg.Consent != nil {
			if err := l.cfg.Consent(ctx, g); err != nil {
				return nil, err
			}
		}
		return l.answerWebRTC(ctx, g, o, stunServer, brokerName)
	}
	// Reserve the session now, so a second offer of the same grant is
	// refused even while this one is still being answered.
	params := &wire.PeerParams{}
	pctx, pcancel := context.WithDeadline(l.ctx, g.Expires.Add(l.cfg.PunchTimeout))
	ps := &pendingSession{grant: g, tech: tech, cancel: pcancel, relayBy: brokerName, broker: broker}
	l.mu.Lock()
	if _, dup := l.pending[g.Session]; dup {
		l.mu.Unlock()
		pcancel()
		return nil, fmt.Errorf("%w: session %s was offered before", ErrGrantUsed, g.Session)
	}
	if len(l.pending)+len(l.active) >= MaxSessions {
		l.mu.Unlock()
		pcancel()
		return nil, fmt.Errorf("%w: %d sessions open or offered on this agent", ErrTooManySessions, MaxSessions)
	}
	l.pending[g.Session] = ps
	l.mu.Unlock()
	if l.cfg.Consent != nil {
		asked := l.cfg.Now()
		if err := l.cfg.Consent(ctx, g); err != nil {
			l.mu.Lock()
			delete(l.pending, g.Session)
			l.mu.Unlock()
			pcancel()
			return nil, err
		}
		if waited := l.cfg.Now().Sub(asked); waited > time.Second {
			// Restart the grant's clock at the approval.
			ttl := g.Expires.Sub(g.IssuedAt)
			exp := l.cfg.Now().Add(ttl)
			pcancel()
			pctx, pcancel = context.WithDeadline(l.ctx, exp.Add(l.cfg.PunchTimeout))
			l.mu.Lock()
			ps.grant.Expires, ps.cancel = exp, pcancel
			l.mu.Unlock()
		}
	}

	if o.Transport != wire.TransportRelay {
		if stunServer.IsValid() {
			l.mu.Lock()
			fresh := l.srflx.IsValid() && l.srflxSrv == stunServer && l.cfg.Now().Sub(l.srflxAt) < 20*time.Second
			srflx := l.srflx
			l.mu.Unlock()
			if !fresh {
				sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
				srflx, err = l.Reflexive(sctx, stunServer)
				scancel()
				if err != nil {
					l.log.Info("no server-reflexive address", "err", err)
				}
			}
			if srflx.IsValid() {
				params.Candidates = append(params.Candidates, wire.Candidate{Kind: wire.CandSrflx, Addr: srflx.String()})
			}
		}
		for _, a := range l.sock.hostCandidates(l.cfg.Net) {
			if len(params.Candidates) < wire.MaxCandidates {
				params.Candidates = append(params.Candidates, wire.Candidate{Kind: wire.CandHost, Addr: a.String()})
			}
		}
		var targets []netip.AddrPort
		for _, c := range append(append([]wire.Candidate(nil), o.Observed...), o.Params.Candidates...) {
			if ap, err := netip.ParseAddrPort(c.Addr); err == nil {
				targets = append(targets, ap)
			}
		}
		params.Ufrag, params.Pwd = randHex(8), randHex(16)
		if o.Params.Ufrag != "" {
			pr := l.sock.newProber(params.Ufrag, params.Pwd, o.Params.Ufrag, o.Params.Pwd, targets)
			l.mu.Lock() // the offer is already visible to claims
			ps.prober = pr
			l.mu.Unlock()
			delay := time.Duration(o.PunchDelayMs) * time.Millisecond
			probeCtx, probeCancel := context.WithTimeout(pctx, l.cfg.PunchTimeout+delay)
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer probeCancel()
				pr.run(probeCtx, delay)
			}()
		}
	}
	if o.Relay && o.Transport != wire.TransportQUIC && l.cfg.Relay != nil {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.joinRelay(pctx, ps)
		}()
	}
	// Forget the offer if the technician never comes.
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		<-pctx.Done()
		l.mu.Lock()
		if l.pending[g.Session] == ps {
			delete(l.pending, g.Session)
		}
		l.mu.Unlock()
		l.mu.Lock()
		p, pr := ps.pump, ps.prober
		l.mu.Unlock()
		if pr != nil {
			pr.close()
		}
		if p != nil && !l.activePump(p) {
			p.close()
		}
	}()
	l.log.Info("session offered", "session", g.Session, "technician", g.TechnicianName, "mode", g.Mode,
		"transport", o.Transport, "candidates", len(params.Candidates))
	return params, nil
}

func (l *Listener) activePump(p *pump) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.active {
		if a.pump == p {
			return true
		}
	}
	return false
}

// joinRelay opens the agent's half of the relayed path.
func (l *Listener) joinRelay(ctx context.Context, ps *pendingSession) {
	stream, err := l.cfg.Relay(ctx, ps.broker, ps.grant.Session)
	if err != nil {
		l.log.Info("relay not joined", "session", ps.grant.Session, "err", err)
		return
	}
	p, err := newPump(l.cfg.Net, stream, l.Port())
	if err != nil {
		stream.Close()
		return
	}
	l.mu.Lock()
	ps.pump = p
	l.mu.Unlock()
	if ctx.Err() != nil { // the offer lapsed while the relay was joining
		p.close()
		return
	}
	p.run()
}

func (l *Listener) isUsed(session string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.used[session]
	return ok
}

// tlsFor picks the TLS configuration for a connection from the session ID
// in its server name: only the technician the pending grant names is
// accepted, and only before the grant expires.
func (l *Listener) tlsFor(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	id := hello.ServerName
	if len(id) != 33 || id[0] != 's' {
		l.log.Info("refused a session connection", "from", remoteOf(hello), "err", "no session in server name")
		return nil, ErrUnknownSession
	}
	id = id[1:]
	l.mu.Lock()
	ps := l.pending[id]
	l.mu.Unlock()
	if ps == nil {
		l.log.Info("refused a session connection", "from", remoteOf(hello), "session", id, "err", ErrUnknownSession)
		return nil, ErrUnknownSession
	}
	// Expiry and single use are checked at the claim, where the refusal
	// can say why; the key is checked here, so nobody but the granted
	// technician learns even that.
	verify := pinned(ps.tech)
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{l.cert},
		NextProtos:             []string{alpn},
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if err := verify(raw, nil); err != nil {
				l.log.Info("refused a session connection", "from", remoteOf(hello), "session", id, "err", err)
				return err
			}
			return nil
		},
	}, nil
}

func (l *Listener) accept() {
	for {
		conn, err := l.ln.Accept(l.ctx)
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(conn)
		}()
	}
}

// serve runs one connection: the technician's claim first, then channels
// and datagrams until the connection ends.
func (l *Listener) serve(conn *quic.Conn) {
	id := conn.ConnectionState().TLS.ServerName[1:]
	ctx := conn.Context()
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	st, err := conn.AcceptStream(hctx)
	hcancel()
	if err != nil {
		conn.CloseWithError(1, "no claim")
		return
	}
	st.SetDeadline(time.Now().Add(10 * time.Second))
	refuse := func(code, msg string) {
		writeJSONFrame(st, helloReply{Error: &wire.Error{Code: code, Message: msg}})
		st.Close()
		l.log.Info("refused a session claim", "session", id, "from", conn.RemoteAddr(), "err", msg)
		time.Sleep(50 * time.Millisecond) // let the refusal leave before the close
		conn.CloseWithError(1, msg)
	}
	name, err := readChanName(st)
	if err != nil || name != ChanHello {
		refuse(wire.CodeBadRequest, "the first channel must be hello")
		return
	}
	var h hello
	if err := readJSONFrame(st, &h); err != nil || h.Session != id {
		refuse(wire.CodeBadRequest, "hello does not name this connection's session")
		return
	}
	// The handshake pinned the technician's key; check it again here, on
	// what the connection really authenticated, so no TLS shortcut can
	// skip the pin.
	var peerID peer.ID
	if certs := conn.ConnectionState().TLS.PeerCertificates; len(certs) == 1 {
		peerID, _ = certPeer([][]byte{certs[0].Raw})
	}
	l.mu.Lock()
	ps := l.pending[id]
	_, used := l.used[id]
	expired := ps != nil && !l.cfg.Now().Before(ps.grant.Expires)
	if ps != nil && !used && !expired && peerID == ps.tech {
		l.pruneUsed()
		l.used[id] = ps.grant.Expires
	}
	l.mu.Unlock()
	switch {
	case ps == nil:
		refuse(wire.CodeNotFound, ErrUnknownSession.Error())
		return
	case peerID != ps.tech:
		refuse(wire.CodeForbidden, ErrGrantPeer.Error())
		return
	case used:
		refuse(wire.CodeConflict, fmt.Sprintf("%v: session %s is open or was opened before", ErrGrantUsed, id))
		return
	case expired:
		refuse(wire.CodeForbidden, fmt.Sprintf("%v at %s: ask the broker for a new session", ErrGrantExpired, ps.grant.Expires.Format(time.RFC3339)))
		return
	}
	if l.cfg.MarkUsed != nil {
		if err := l.cfg.MarkUsed(id, ps.grant.Expires); err != nil {
			refuse(wire.CodeConflict, err.Error())
			return
		}
	}
	if err := writeJSONFrame(st, helloReply{Mode: ps.grant.Mode}); err != nil {
		conn.CloseWithError(1, "claim reply failed")
		return
	}
	st.Close()
	l.mu.Lock()
	as := &agentSession{conn: conn, pump: ps.pump, via: ps.relayBy, grant: ps.grant, info: wire.SessionInfo{Session: id,
		Technician: ps.grant.TechnicianName, Mode: ps.grant.Mode, Started: l.cfg.Now().UTC()}}
	as.info.Path, as.info.Remote = l.pathOf(as)
	l.active[id] = as
	pr := ps.prober
	l.mu.Unlock()
	if pr != nil {
		// Keep answering probes for the session's life, so a relayed
		// technician can still punch through and move.
		defer pr.close()
	}
	l.log.Info("session accepted", "session", id, "technician", ps.grant.TechnicianName, "mode", ps.grant.Mode, "path", as.info.Path, "remote", as.info.Remote)
	l.changed()
	defer func() {
		l.mu.Lock()
		delete(l.active, id)
		p, cancel := as.pump, ps.cancel
		l.mu.Unlock()
		if p != nil {
			p.close()
		}
		cancel()
		l.log.Info("session ended", "session", id)
		l.changed()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		l.echoDatagrams(conn)
	}()
	if as.pump != nil {
		// A relay that ends while the session still uses it ends the
		// session: waiting for QUIC's idle timeout would leave it listed.
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-conn.Context().Done():
			case <-as.pump.done:
				l.mu.Lock()
				p, _ := l.pathOf(as)
				l.mu.Unlock()
				if strings.HasPrefix(p, wire.PathRelayed) {
					conn.CloseWithError(0, "relay closed")
				}
			}
		}()
	}
	go func() {
		defer wg.Done()
		l.watchPath(conn, as)
	}()
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.channel(st, as)
		}()
	}
	wg.Wait()
}

// pathOf reports the path a session uses now: the relay pump's loopback
// address means the relay.
func (l *Listener) pathOf(as *agentSession) (string, string) {
	ra, _ := as.conn.RemoteAddr().(*net.UDPAddr)
	if ra != nil && as.pump != nil && ra.AddrPort().Port() == as.pump.addr().Port() && ra.IP.IsLoopback() {
		return wire.PathRelayed + " via " + as.via, ""
	}
	return wire.PathDirectQUIC, as.conn.RemoteAddr().String()
}

// watchPath notices QUIC migrations (relay → direct) and reports them.
func (l *Listener) watchPath(conn *quic.Conn, as *agentSession) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-conn.Context().Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		p, r := l.pathOf(as)
		changed := p != as.info.Path || r != as.info.Remote
		as.info.Path, as.info.Remote = p, r
		l.mu.Unlock()
		if changed {
			l.log.Info("session path changed", "session", as.info.Session, "path", p, "remote", r)
			l.changed()
		}
	}
}

func (l *Listener) echoDatagrams(conn *quic.Conn) {
	for {
		b, err := conn.ReceiveDatagram(conn.Context())
		if err != nil {
			return
		}
		if len(b) <= 64 {
			conn.SendDatagram(b)
		}
	}
}

// channel serves one stream. Every mode may use these: they move test
// bytes and deliver nothing to the machine.
func (l *Listener) channel(st *quic.Stream, as *agentSession) {
	defer st.Close()
	name, err := readChanName(st)
	if err != nil {
		st.CancelRead(1)
		return
	}
	switch name {
	case ChanEcho:
		io.Copy(st, st)
	case ChanSink:
		n, _ := io.Copy(io.Discard, st)
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		st.Write(b[:])
	case ChanSource:
		var b [8]byte
		if _, err := io.ReadFull(st, b[:]); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint64(b[:]))
		buf := make([]byte, 64<<10)
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := st.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	default:
		h := l.cfg.Channels[name]
		if h == nil {
			l.log.Info("refused an unknown channel", "session", as.info.Session, "channel", name)
			st.CancelRead(2)
			st.CancelWrite(2)
			return
		}
		h(as.conn.Context(), &Channel{Stream: st, Name: name, Session: as.info, Grant: as.grant})
	}
}

// checkTechnicianParams checks that the offer's parameters are the granted
// technician's: signed by the technician's key, or, for a web-console
// grant, a WebRTC offer declaring exactly the browser fingerprints the
// broker bound into the grant.
func checkTechnicianParams(g wire.Grant, tech peer.ID, o *wire.Offer) error {
	if len(g.Fingerprints) == 0 {
		if err := VerifyParams(tech, o.Params, o.ParamsSig); err != nil {
			return fmt.Errorf("technician parameters: %w", err)
		}
		return nil
	}
	if o.Transport != wire.TransportWebRTC {
		return fmt.Errorf("%w: a web-console grant is for WebRTC, not %s", ErrGrantPeer, o.Transport)
	}
	fps, err := rtc.Fingerprints(o.Params.SDP)
	if err != nil {
		return fmt.Errorf("technician parameters: %w", err)
	}
	if !sameSet(fps, g.Fingerprints) {
		return fmt.Errorf("%w: the offer's DTLS fingerprints are not the ones the grant names", ErrGrantPeer)
	}
	return nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// Channel is one channel of a live session, as an agent-side handler sees
// it. The handler enforces the grant's mode: the agent, not the
// technician's client, decides what a session may do.
type Channel struct {
	Stream  io.ReadWriteCloser
	Name    string
	Session wire.SessionInfo
	Grant   wire.Grant
}

// ChannelHandler serves one channel until it is done; the stream is
// closed after it returns. ctx ends with the session.
type ChannelHandler func(ctx context.Context, ch *Channel)

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

func (l *Listener) changed() {
	if l.cfg.OnChange != nil {
		l.cfg.OnChange(l.Sessions())
	}
}

func remoteOf(h *tls.ClientHelloInfo) string {
	if h.Conn == nil || h.Conn.RemoteAddr() == nil {
		return ""
	}
	return h.Conn.RemoteAddr().String()
}

// pruneUsed forgets used grants that have expired: they are refused as
// expired anyway. l.mu must be held.
func (l *Listener) pruneUsed() {
	if len(l.used) < 256 {
		return
	}
	now := l.cfg.Now()
	for id, exp := range l.used {
		if now.After(exp) {
			delete(l.used, id)
		}
	}
}
