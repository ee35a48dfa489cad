package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
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

var errNotQUIC = errors.New("this call needs a QUIC session; on WebRTC open channels with OpenChannel")
