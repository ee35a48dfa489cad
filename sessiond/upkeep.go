package sessiond

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// runSessionUpkeep keeps the server-reflexive address fresh (and with it
// the NAT mapping of the session socket), so an offer is answered without
// a STUN round trip, and tells the broker about session changes.
func (a *Agent) runSessionUpkeep(ctx context.Context) {
	refresh := time.NewTicker(20 * time.Second)
	defer refresh.Stop()
	var last []wire.SessionInfo // the list the broker holding the bridge has
	sent := false
	for {
		_, _, upCh := a.bridgeState()
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			if l, _, _ := a.held(); l == nil {
				// Held down (asleep, quiet) the agent sends nothing.
				a.refreshReflexive(ctx)
			}
			continue
		case <-a.statusKick:
		case <-upCh:
			sent = false // a new broker holds the bridge: tell it
		}
		cur := a.liveSessions()
		if sent && slices.Equal(cur, last) {
			continue
		}
		if a.sendSessionStatus(ctx, cur) {
			last, sent = cur, true
		}
	}
}

// bridgeState returns whether the bridge is up, the broker holding it, and
// a channel closed when that changes.
func (a *Agent) bridgeState() (up bool, broker peer.ID, changed <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.up, a.connected, a.upChanged
}

// setSTUN remembers the broker's STUN server for refreshes.
func (a *Agent) setSTUN(ap netip.AddrPort) {
	a.mu.Lock()
	a.stun = ap
	a.mu.Unlock()
}

// refreshReflexive asks the last broker's STUN server for the session
// socket's reflexive address, once one is known.
func (a *Agent) refreshReflexive(ctx context.Context) {
	a.mu.Lock()
	srv := a.stun
	a.mu.Unlock()
	if !srv.IsValid() {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	a.sessions.Reflexive(rctx, srv)
}

// sendSessionStatus tells the broker holding the bridge about the
// sessions, and reports whether it took them. With the bridge down there
// is nobody to tell.
func (a *Agent) sendSessionStatus(ctx context.Context, cur []wire.SessionInfo) bool {
	up, broker, _ := a.bridgeState()
	if !up {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var r wire.Reply
	err := bridge.Call(cctx, a.host, broker, wire.ProtoSessionStatus, &wire.SessionStatus{Sessions: cur}, &r, wire.MaxControl)
	if err == nil && r.Error != nil {
		a.log.Info("broker refused the session status", "err", r.Error.Message)
	}
	return err == nil && r.Error == nil
}

// kickStatus wakes the session upkeep to send the session status; a wake
// already pending covers this one.
func (a *Agent) kickStatus() {
	select {
	case a.statusKick <- struct{}{}:
	default:
	}
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
