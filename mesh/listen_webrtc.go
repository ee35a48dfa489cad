package mesh

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/readymesh/readymesh/mesh/rtc"
	"github.com/readymesh/readymesh/peer/wire"
)

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
	l.wg.Go(func() { l.runWebRTC(ans, g, via) })
	return &wire.PeerParams{SDP: sdp}, nil
}

// runWebRTC waits for an answered session's ICE and DTLS, for
// PunchTimeout and 5 s more at most, then serves it until it ends.
func (l *Listener) runWebRTC(ans *rtc.Answerer, g wire.Grant, via string) {
	defer ans.Close()
	wctx, cancel := context.WithTimeout(l.ctx, l.cfg.PunchTimeout+5*time.Second)
	rs, err := ans.Session(wctx)
	cancel()
	if err != nil {
		l.log.Info("webrtc session never opened", "session", g.Session, "err", err)
		return
	}
	as := l.activateWebRTC(rs, g, via)
	l.wg.Go(func() { serveRTCBytes(rs.Bytes()) })
	l.serveWebRTC(rs, as)
	l.mu.Lock()
	delete(l.active, g.Session)
	l.mu.Unlock()
	l.log.Info("session ended", "session", g.Session)
	l.changed()
}

// activateWebRTC lists an opened WebRTC session as active.
func (l *Listener) activateWebRTC(rs *rtc.Session, g wire.Grant, via string) *agentSession {
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
	return as
}

// serveWebRTC serves a session's channels until it ends or the listener
// closes. The session ends when its handlers have: a terminal's last
// output and exit, its transcript, its processes.
func (l *Listener) serveWebRTC(rs *rtc.Session, as *agentSession) {
	sctx, stop := context.WithCancel(l.ctx)
	served := make(chan struct{})
	l.wg.Go(func() {
		defer close(served)
		l.serveRTCChannels(sctx, rs, as)
	})
	select {
	case <-rs.Done():
	case <-l.ctx.Done():
	}
	stop()
	rs.Close()
	<-served
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
		wg.Go(func() {
			defer c.Stream.Close()
			h(ctx, &Channel{Stream: c.Stream, Name: c.Label, Session: as.info, Grant: as.grant})
		})
	}
}
