package sessiond

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// Quiet mode. On a metered connection (a phone's hotspot, a capped LTE
// link) the fleet may want its agents to stay quiet: no bridge, no
// heartbeats, no STUN refreshes, only a check-in on a long cadence
// (Config.QuietInterval, or the fleet's policy) with a compact snapshot.
// The agent tells its broker before it goes (wire.AwayQuiet, with the
// time of its next check-in as ExpectedBack), and comes back at once
// when the connection is no longer metered. Queued jobs wait for it: the
// queue sends work over the bridge only.
//
// The policy in force is the fleet's for this machine (its own, else its
// client's: wire.AgentPolicy, sent in the presence hello and in every
// check-in ack, and kept in the local database so a quiet agent knows it
// without a bridge), else sessiond run --on-metered, else normal.

// onMetered is the metered-connection policy in force and the quiet
// check-in cadence.
func (a *Agent) onMetered() (string, time.Duration) {
	a.mu.Lock()
	p := a.policy
	a.mu.Unlock()
	mode, every := p.OnMetered, time.Duration(p.QuietCheckInSec)*time.Second
	if mode == "" {
		mode = a.cfg.OnMetered
	}
	if every <= 0 {
		every = a.cfg.QuietInterval
	}
	return mode, every
}

// quietNow reports whether the agent should be quiet now.
func (a *Agent) quietNow() bool {
	mode, _ := a.onMetered()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.metered && mode == wire.MeteredQuiet
}

// isQuiet reports whether the bridge is held down for quiet mode.
func (a *Agent) isQuiet() bool {
	l, _, _ := a.held()
	return l != nil && l.Reason == wire.AwayQuiet
}

// learnPolicy keeps the fleet's policy for this agent (empty: none is
// set; nil: the broker did not say) and has the quiet-mode decision made again if it changed. It never
// blocks: the bridge goroutine calls it.
func (a *Agent) learnPolicy(p *wire.AgentPolicy) {
	if p == nil {
		return // a broker before 0.4.0 says nothing of policies
	}
	np := *p
	// Memory and the database change together, in the order the
	// brokers' words arrived (the bridge and the check-in loop both
	// call this).
	a.policyMu.Lock()
	defer a.policyMu.Unlock()
	a.mu.Lock()
	changed := a.policy != np
	a.policy = np
	a.mu.Unlock()
	if !changed {
		return
	}
	a.log.Info("the fleet's policy for this machine changed", "on_metered", np.OnMetered, "quiet_check_in_s", np.QuietCheckInSec)
	if _, err := a.db.EditAway(func(s *localdb.AwayState) { s.Policy = np }); err != nil {
		a.log.Warn("could not keep the fleet's policy", "err", err)
	}
	a.kickQuiet()
}

// setMetered records whether the connection is metered now.
func (a *Agent) setMetered(m bool) {
	a.mu.Lock()
	a.metered = m
	a.mu.Unlock()
}

// kickQuiet has the quiet-mode decision made again; a kick already
// pending covers this one.
func (a *Agent) kickQuiet() {
	select {
	case a.quietKick <- struct{}{}:
	default:
	}
}

// decideQuiet enters or leaves quiet mode as the connection and the
// policy say. It runs on the system-events goroutine.
func (a *Agent) decideQuiet(ctx context.Context) {
	quiet := a.quietNow()
	l, _, _ := a.held()
	switch {
	case quiet && l == nil:
		_, every := a.onMetered()
		a.log.Info("the connection is metered: going quiet", "check_in_every", every)
		a.goAway(ctx, *a.quietLeaving(), 0)
		a.kickCheckIns()
	case !quiet && l != nil && l.Reason == wire.AwayQuiet:
		what := wire.ReturnedUnmetered
		a.mu.Lock()
		if a.metered {
			what = wire.ReturnedPolicy // still metered: the policy changed
		}
		a.mu.Unlock()
		a.log.Info("back from quiet mode", "why", what)
		a.comeBack(wire.AwayQuiet, &wire.Returned{What: what, At: time.Now().UTC()})
		a.kickCheckIns()
	}
}

// quietLeaving is the notice of an agent going quiet: on a metered
// connection, back at its next quiet check-in.
func (a *Agent) quietLeaving() *wire.Leaving {
	_, every := a.onMetered()
	back := time.Now().Add(every).UTC().Truncate(time.Second)
	return &wire.Leaving{Reason: wire.AwayQuiet, Detail: "on a metered connection", ExpectedBack: &back}
}

// kickCheckIns tells the check-in loop that quiet mode began or ended.
func (a *Agent) kickCheckIns() {
	select {
	case a.modeKick <- struct{}{}:
	default:
	}
}

// quietCheckIn makes one check-in without a bridge: it dials the broker,
// sends the check-in with a compact snapshot and hangs up.
func (a *Agent) quietCheckIn(ctx context.Context, reason string) (uint64, string, error) {
	target := a.brokers.current()
	ai, err := bridge.AddrInfo(target)
	if err != nil {
		return 0, reason, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = dialBroker(dctx, a.host, ai)
	cancel()
	if err != nil {
		a.brokers.failed()
		return 0, reason, fmt.Errorf("quiet check-in: dial broker: %w", err)
	}
	defer a.hangUp(ai.ID)
	snap, reason, pend := a.snapshot(ctx, reason)
	if reason == wire.ReasonInterval || reason == wire.ReasonNetwork {
		reason = wire.ReasonQuiet
	}
	seq, err := a.sendCompact(ctx, ai.ID, reason, snap, pend)
	if err == nil {
		a.brokers.succeeded()
	} else {
		a.brokers.failed() // refused or cut off: the next one tries another broker
	}
	return seq, reason, err
}

// hangUp closes the connection to a broker the agent dialled for one
// exchange, unless the bridge has come up over it meanwhile.
func (a *Agent) hangUp(id peer.ID) {
	if up, broker, _ := a.bridgeState(); up && broker == id {
		return
	}
	a.host.Network().ClosePeer(id)
}
