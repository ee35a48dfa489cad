package sessiond

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/channel"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// startSessions opens the session socket and serves offers from brokers.
func (a *Agent) startSessions() error {
	chs, err := channel.New(channel.Config{User: a.cfg.SessionUser, Logger: a.log,
		TranscriptDir: filepath.Join(a.cfg.StateDir, TranscriptDir), OnCommand: a.recordCommand, RecordInput: a.cfg.RecordInput,
		OnShare: a.kickStatus})
	if err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	a.channels = chs
	l, err := mesh.Listen(mesh.ListenConfig{
		Channels: chs.Handlers(),
		Consent:  a.askConsent,
		Key:      a.key,
		Addr:     a.cfg.SessionAddr,
		Trusted:  a.trustedBroker,
		MarkUsed: a.markGrantUsed,
		Relay:    a.openRelay,
		OnChange: a.sessionsChanged,
		Logger:   a.log,
		Now:      a.cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	a.sessions = l
	a.host.SetStreamHandler(wire.ProtoSession, a.handleOffer)
	a.host.SetStreamHandler(wire.ProtoPolicy, a.handlePolicy)
	a.host.SetStreamHandler(wire.ProtoJob, a.handleJob)
	return nil
}

// trustedBroker reports whether p is a broker this agent knows: the one it
// enrolled with or one it learned from them. Only they may issue grants.
func (a *Agent) trustedBroker(p peer.ID) bool {
	for _, b := range a.brokers.all() {
		if b.PeerID == p.String() {
			return true
		}
	}
	return false
}

// handleOffer answers a session offer carried by a broker.
func (a *Agent) handleOffer(s network.Stream) {
	defer s.Close()
	from := s.Conn().RemotePeer()
	s.SetDeadline(time.Now().Add(a.cfg.ConsentTimeout + 30*time.Second))
	reply := func(e *wire.Error, p *wire.PeerParams) {
		ans := wire.Answer{Error: e}
		if p != nil {
			ans.Params = *p
			sig, err := mesh.SignParams(a.key.Priv, *p)
			if err != nil {
				e = &wire.Error{Code: wire.CodeInternal, Message: "sign the answer: " + err.Error()}
				ans = wire.Answer{Error: e}
			}
			ans.ParamsSig = sig
		}
		if e != nil {
			a.log.Warn("refused a session offer", "from", from, "code", e.Code, "reason", e.Message)
		}
		wire.Write(s, &ans)
	}
	if !a.trustedBroker(from) {
		reply(&wire.Error{Code: wire.CodeForbidden, Message: "only this agent's brokers may offer sessions"}, nil)
		return
	}
	var o wire.Offer
	if err := wire.NewReader(s).Read(wire.MaxControl, &o); err != nil {
		code := wire.CodeBadRequest
		if errors.Is(err, wire.ErrTooLarge) {
			code = wire.CodeTooLarge
		}
		reply(&wire.Error{Code: code, Message: err.Error()}, nil)
		return
	}
	var stunSrv netip.AddrPort
	if o.STUNPort > 0 {
		if ip, ok := remoteIP(s.Conn()); ok {
			stunSrv = netip.AddrPortFrom(ip, uint16(o.STUNPort))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ConsentTimeout+20*time.Second)
	defer cancel()
	name := ""
	for _, b := range a.brokers.all() {
		if b.PeerID == from.String() {
			name = b.Name
		}
	}
	p, err := a.sessions.Offer(ctx, from, name, &o, stunSrv)
	if err != nil {
		reply(&wire.Error{Code: offerCode(err), Message: err.Error()}, nil)
		return
	}
	if stunSrv.IsValid() {
		a.setSTUN(stunSrv)
	}
	reply(nil, p)
}

func offerCode(err error) string {
	switch {
	case errors.Is(err, mesh.ErrGrantUsed):
		return wire.CodeConflict
	case errors.Is(err, ErrConsentDenied), errors.Is(err, ErrConsentTimeout):
		return wire.CodeForbidden
	case errors.Is(err, mesh.ErrGrantForged), errors.Is(err, mesh.ErrGrantIssuer), errors.Is(err, mesh.ErrGrantExpired),
		errors.Is(err, mesh.ErrGrantMachine), errors.Is(err, mesh.ErrGrantPeer):
		return wire.CodeForbidden
	}
	return wire.CodeBadRequest
}

// remoteIP is the IP a connection's remote multiaddr names.
func remoteIP(c network.Conn) (netip.Addr, bool) {
	ip, err := manet.ToIP(c.RemoteMultiaddr())
	if err != nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// openRelay joins a session's relay on the broker that offered it.
func (a *Agent) openRelay(ctx context.Context, broker peer.ID, session string) (io.ReadWriteCloser, error) {
	return bridge.OpenRelay(ctx, a.host, broker, session)
}

// setSTUN remembers the broker's STUN server for refreshes.
func (a *Agent) setSTUN(ap netip.AddrPort) {
	a.mu.Lock()
	a.stun = ap
	a.mu.Unlock()
}

// runSessionUpkeep keeps the server-reflexive address fresh (and with it
// the NAT mapping of the session socket), so an offer is answered without
// a STUN round trip, and tells the broker about session changes.
func (a *Agent) runSessionUpkeep(ctx context.Context) {
	refresh := time.NewTicker(20 * time.Second)
	defer refresh.Stop()
	var last []wire.SessionInfo
	sent := false
	for {
		a.mu.Lock()
		upCh := a.upChanged
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			a.mu.Lock()
			srv := a.stun
			a.mu.Unlock()
			if srv.IsValid() {
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				a.sessions.Reflexive(rctx, srv)
				cancel()
			}
			continue
		case <-a.statusKick:
		case <-upCh:
			sent = false // a new broker holds the bridge: tell it
		}
		cur := a.liveSessions()
		if sent && equalSessions(cur, last) {
			continue
		}
		a.mu.Lock()
		broker, up := a.connected, a.up
		a.mu.Unlock()
		if !up {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var r wire.Reply
		err := bridge.Call(cctx, a.host, broker, wire.ProtoSessionStatus, &wire.SessionStatus{Sessions: cur}, &r, wire.MaxControl)
		cancel()
		if err == nil && r.Error == nil {
			last, sent = cur, true
		} else if err == nil {
			a.log.Info("broker refused the session status", "err", r.Error.Message)
		}
	}
}

func (a *Agent) kickStatus() {
	select {
	case a.statusKick <- struct{}{}:
	default:
	}
}

func equalSessions(x, y []wire.SessionInfo) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

// markGrantUsed records a used grant in the local database, reporting a repeat as
// mesh.ErrGrantUsed.
func (a *Agent) markGrantUsed(session string, expires time.Time) error {
	err := a.db.MarkGrantUsed(session, expires)
	if errors.Is(err, localdb.ErrGrantUsed) {
		return fmt.Errorf("%w: session %s (recorded before a restart)", mesh.ErrGrantUsed, session)
	}
	return err
}

// liveSessions is the session list with the input-pause state.
func (a *Agent) liveSessions() []wire.SessionInfo {
	ss := a.sessions.Sessions()
	for i := range ss {
		ss[i].InputPaused, ss[i].State = a.channels.InputPaused(), "active"
		ss[i].Shared = a.channels.Shared(ss[i].Session)
	}
	for _, r := range a.waiting() {
		ss = append(ss, wire.SessionInfo{Session: r.Session, Technician: r.Technician, Mode: r.Mode,
			Started: r.Asked, State: "waiting-for-approval"})
	}
	return ss
}

// setInputPaused pauses or resumes remote input and tells the broker.
func (a *Agent) setInputPaused(p bool) {
	a.channels.SetInputPaused(p)
	a.kickStatus()
}
