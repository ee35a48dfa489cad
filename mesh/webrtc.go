package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/readymesh/readymesh/mesh/rtc"
	"github.com/readymesh/readymesh/peer/wire"
)

// WebRTC sessions (transport webrtc) use the same grant and signalling as
// QUIC ones: the technician's offer SDP travels inside its signed
// parameters, so the DTLS fingerprint the agent will accept is the granted
// technician's; the agent answers with its own. ICE then finds the path,
// with the broker's STUN for server-reflexive candidates and its TURN
// relay as the fallback. Browsers will use this path; native peers use it
// when asked to.

// ICEServers returns the broker's STUN and TURN servers for pion.
func ICEServers(stun netip.AddrPort, turnUser, turnPassword string) []webrtc.ICEServer {
	if !stun.IsValid() {
		return nil
	}
	out := []webrtc.ICEServer{{URLs: []string{"stun:" + stun.String()}}}
	if turnUser != "" {
		out = append(out, webrtc.ICEServer{URLs: []string{"turn:" + stun.String() + "?transport=udp"},
			Username: turnUser, Credential: turnPassword})
	}
	return out
}

// rtcConfig is the WebRTC configuration for a session socket bound to
// addr: a specific address limits the host candidates to it.
func rtcConfig(addr string, servers []webrtc.ICEServer) rtc.Config {
	cfg := rtc.Config{ICEServers: servers}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			cfg.IPFilter = func(x net.IP) bool { return x.Equal(ip) }
			cfg.IncludeLoopback = ip.IsLoopback()
		}
	}
	return cfg
}

// dialWebRTC is Dial for transport webrtc.
func dialWebRTC(ctx context.Context, cfg DialConfig, start time.Time) (*Session, error) {
	rcfg := rtcConfig(cfg.Addr, cfg.ICEServers)
	rcfg.Net, rcfg.Logger = cfg.WebRTCNet, cfg.Logger
	off, sdp, err := rtc.Offer(ctx, rcfg)
	if err != nil {
		return nil, fmt.Errorf("mesh: webrtc offer: %w", err)
	}
	params := wire.PeerParams{SDP: sdp}
	sig, err := SignParams(cfg.Key.Priv, params)
	if err != nil {
		off.Close()
		return nil, err
	}
	res, err := cfg.Signal(ctx, params, sig, "")
	if err != nil {
		off.Close()
		return nil, err
	}
	g, machine, err := CheckResult(res, cfg.Key.ID, cfg.Broker)
	if err != nil {
		off.Close()
		return nil, fmt.Errorf("mesh: %w", err)
	}
	rs, err := off.Accept(ctx, res.Answer.SDP)
	if err != nil {
		off.Close()
		return nil, fmt.Errorf("mesh: webrtc session to %s: %w", g.Machine, err)
	}
	_, cancel := context.WithCancel(context.Background())
	s := &Session{ID: g.Session, Machine: machine, Mode: g.Mode, Grant: g, rtc: rs, cancel: cancel,
		changed: make(chan struct{}), claimed: make(chan struct{}), pings: map[uint64]chan struct{}{}}
	close(s.claimed)
	p := rs.Path()
	s.path = Path{Kind: p.Kind, Remote: p.Remote}
	if p.Kind == rtc.PathRelayed {
		s.path = Path{Kind: p.Kind, Via: res.RelayName}
	}
	s.cleanup = append(s.cleanup, func() { off.Close() })
	s.Setup = time.Since(start)
	cfg.Logger.Info("session open", "session", s.ID, "machine", g.Machine, "mode", s.Mode, "path", s.path.String(), "setup", s.Setup)
	return s, nil
}

// sendRTC is Send over the WebRTC bytes channel: an 8-byte length, the
// bytes, and the agent's 8-byte receipt.
func (s *Session) sendRTC(ctx context.Context, n int64) error {
	st := s.rtc.Bytes()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(n))
	if _, err := st.Write(hdr[:]); err != nil {
		return fmt.Errorf("session %s: send: %w", s.ID, err)
	}
	buf := make([]byte, 64<<10)
	for left := n; left > 0; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		k := min(left, int64(len(buf)))
		if _, err := st.Write(buf[:k]); err != nil {
			return fmt.Errorf("session %s: send: %w", s.ID, err)
		}
		left -= k
	}
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		return fmt.Errorf("session %s: send: no receipt: %w", s.ID, err)
	}
	if r := int64(binary.BigEndian.Uint64(hdr[:])); r != n {
		return fmt.Errorf("session %s: agent read %d bytes of %d", s.ID, r, n)
	}
	return nil
}

// serveRTCBytes is the agent's end of sendRTC.
func serveRTCBytes(st io.ReadWriter) {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(st, hdr[:]); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint64(hdr[:]))
		got, _ := io.CopyN(io.Discard, st, n)
		binary.BigEndian.PutUint64(hdr[:], uint64(got))
		if _, err := st.Write(hdr[:]); err != nil || got != n {
			return
		}
	}
}

// answerWebRTC handles the agent's side of a WebRTC offer whose grant and
// signature are already checked: the grant is used now (the offer's DTLS
// fingerprint is the granted technician's), the answer returned, and the
// session tracked once ICE and DTLS complete.
func (l *Listener) answerWebRTC(ctx context.Context, g wire.Grant, o *wire.Offer, stunServer netip.AddrPort, via string) (*wire.PeerParams, error) {
	l.mu.Lock()
	n := len(l.pending) + len(l.active)
	l.mu.Unlock()
	if n >= MaxSessions {
		return nil, fmt.Errorf("%w: %d sessions open or offered on this agent", ErrTooManySessions, MaxSessions)
	}
	if err := l.markUsed(g); err != nil {
		return nil, err
	}
	rcfg := rtcConfig(l.cfg.Addr, ICEServers(stunServer, o.TURNUser, o.TURNPassword))
	rcfg.Net, rcfg.Logger = l.cfg.WebRTCNet, l.log
	ans, sdp, err := rtc.Answer(ctx, rcfg, o.Params.SDP)
	if err != nil {
		return nil, fmt.Errorf("webrtc answer: %w", err)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer ans.Close()
		wctx, cancel := context.WithTimeout(l.ctx, l.cfg.PunchTimeout+5*time.Second)
		rs, err := ans.Session(wctx)
		cancel()
		if err != nil {
			l.log.Info("webrtc session never opened", "session", g.Session, "err", err)
			return
		}
		p := rs.Path()
		path := p.Kind
		if p.Kind == rtc.PathRelayed {
			path += " via " + via
		}
		as := &agentSession{rtc: rs, grant: g, info: wire.SessionInfo{Session: g.Session, Technician: g.TechnicianName,
			Mode: g.Mode, Path: path, Remote: p.Remote, Started: l.cfg.Now().UTC()}}
		l.mu.Lock()
		l.active[g.Session] = as
		l.mu.Unlock()
		l.log.Info("session accepted", "session", g.Session, "technician", g.TechnicianName, "mode", g.Mode, "path", path, "remote", p.Remote)
		l.changed()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			serveRTCBytes(rs.Bytes())
		}()
		sctx, send := context.WithCancel(l.ctx)
		served := make(chan struct{})
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer close(served)
			l.serveRTCChannels(sctx, rs, as)
		}()
		select {
		case <-rs.Done():
		case <-l.ctx.Done():
		}
		send()
		rs.Close()
		// The session ends when its handlers have: a terminal's last
		// output and exit, its transcript, its processes.
		<-served
		l.mu.Lock()
		delete(l.active, g.Session)
		l.mu.Unlock()
		l.log.Info("session ended", "session", g.Session)
		l.changed()
	}()
	return &wire.PeerParams{SDP: sdp}, nil
}

// serveRTCChannels serves the channels the technician opens in-band on a
// WebRTC session with the agent's channel handlers, as QUIC streams are
// served: a browser's terminal arrives this way. ctx ends with the
// session; so does every handler's.
func (l *Listener) serveRTCChannels(ctx context.Context, rs *rtc.Session, as *agentSession) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := rs.AcceptChannel(ctx)
		if err != nil {
			return
		}
		h := l.cfg.Channels[c.Label]
		if h == nil {
			l.log.Info("refused an unknown channel", "session", as.info.Session, "channel", c.Label)
			c.Stream.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Stream.Close()
			h(ctx, &Channel{Stream: c.Stream, Name: c.Label, Session: as.info, Grant: as.grant})
		}()
	}
}

// markUsed records a grant as used, in memory and through MarkUsed.
func (l *Listener) markUsed(g wire.Grant) error {
	l.mu.Lock()
	if _, used := l.used[g.Session]; used {
		l.mu.Unlock()
		return fmt.Errorf("%w: session %s", ErrGrantUsed, g.Session)
	}
	l.pruneUsed()
	l.used[g.Session] = g.Expires
	l.mu.Unlock()
	if l.cfg.MarkUsed != nil {
		if err := l.cfg.MarkUsed(g.Session, g.Expires); err != nil {
			return err
		}
	}
	return nil
}

var errNotQUIC = errors.New("this call needs a QUIC session; on WebRTC open channels with OpenChannel")
