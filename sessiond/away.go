package sessiond

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/lastrun"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// Being away. The agent tells its broker why before its bridge goes
// (wire.Leaving on a last heartbeat): it was stopped, the machine is
// shutting down or going to sleep, or the connection is metered and the
// policy says stay quiet. The broker shows the reason on the overlay of
// every broker, and a technician sees a closed lid rather than a grey
// dot. While the machine is asleep, shutting down or quiet, the bridge is
// held down (the hold); when the agent comes back it says what happened
// meanwhile (wire.Returned in the next hello).

// Timing of a leaving notice.
const (
	// leaveTimeout bounds goAway: the notice, its ack and the close. It
	// fits within the time a system gives before it sleeps (logind's
	// delay inhibitor is held for at most sysevents' MaxDelay, 3 s).
	leaveTimeout = 2500 * time.Millisecond
	// leaveAckWait bounds the wait for the broker's ack of the notice.
	leaveAckWait = 1500 * time.Millisecond
	// shutdownHold bounds the hold after a shutdown notice: a shutdown
	// that has not come by then was cancelled, and the agent reconnects.
	shutdownHold = 2 * time.Minute
	// asleepHold bounds the hold after a sleep notice, in the time the
	// machine is awake (Go's timers stop with the monotonic clock while
	// Linux and macOS sleep; Windows' fire at the resume): a resume that
	// was never announced (the bus restarted meanwhile) does not keep
	// the agent away for good.
	asleepHold = 2 * time.Minute
	// shutdownMemory is how long after a shutdown was announced a stop
	// still counts as that shutdown: updates installing can hold a
	// shutdown up long after logind announced it.
	shutdownMemory = time.Hour
)

// errLeft ends a presence stream that was closed after a leaving notice.
var errLeft = errors.New("bridge closed after a leaving notice")

// holdState is why the bridge is held down, if it is.
type holdState struct {
	leaving *wire.Leaving // nil: not held
	until   time.Time     // zero: until released
}

// goAway holds the bridge down with l as the reason; the bridge
// goroutine, which watches the hold, sends l on a last heartbeat and
// closes the presence stream. It returns once the bridge is down (the
// broker acknowledged the notice, or could not be told), or leaveTimeout
// passed: the hold stays either way, so a slow link still closes.
func (a *Agent) goAway(ctx context.Context, l wire.Leaving, hold time.Duration) {
	a.setHold(&l, hold)
	limit := time.NewTimer(leaveTimeout)
	defer limit.Stop()
	for {
		up, _, changed := a.bridgeState()
		if !up {
			return
		}
		select {
		case <-changed:
		case <-limit.C:
			a.log.Warn("the bridge did not close in time after the leaving notice", "reason", l.Reason)
			return
		case <-ctx.Done():
			return
		}
	}
}

// comeBack releases the hold, if it was for reason (any reason when
// empty), and has the next hello say what happened.
func (a *Agent) comeBack(reason string, r *wire.Returned) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hold.leaving == nil || reason != "" && a.hold.leaving.Reason != reason {
		return false
	}
	a.hold = holdState{}
	if r != nil {
		a.returned = r
	}
	close(a.holdChanged)
	a.holdChanged = make(chan struct{})
	return true
}

// setHold holds the bridge down for l, for at most d when d > 0.
func (a *Agent) setHold(l *wire.Leaving, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hold = holdState{leaving: l}
	if d > 0 {
		a.hold.until = time.Now().Add(d)
	}
	close(a.holdChanged)
	a.holdChanged = make(chan struct{})
}

// held returns the hold's notice (nil when not held), when it ends by
// itself (zero: never) and a channel closed when it changes.
func (a *Agent) held() (*wire.Leaving, time.Time, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hold.leaving, a.hold.until, a.holdChanged
}

// waitHold blocks while the bridge is held down, until ctx is done. A
// hold with an end that passes is released (a shutdown that never came).
func (a *Agent) waitHold(ctx context.Context) {
	for {
		l, until, changed := a.held()
		if l == nil {
			return
		}
		var expire <-chan time.Time
		var t *time.Timer
		if !until.IsZero() {
			t = time.NewTimer(time.Until(until))
			expire = t.C
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-expire:
			if a.comeBack(l.Reason, nil) {
				a.runResumed()
				a.log.Info("still running long after the notice; reconnecting", "reason", l.Reason)
				a.kickQuiet() // a metered connection keeps it down, as quiet
			}
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// takeReturned returns what the next hello says of the time away, once.
func (a *Agent) takeReturned() *wire.Returned {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.returned
	a.returned = nil
	return r
}

// putReturned gives back what a hello that failed did not deliver,
// unless something newer happened meanwhile.
func (a *Agent) putReturned(r *wire.Returned) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.returned == nil {
		a.returned = r
	}
}

// stopNotice is the notice of an agent whose Run is ending: stopped, or
// shutdown when the service manager said the system is going down.
func (a *Agent) stopNotice(ctx context.Context) wire.Leaving {
	if isShutdown(context.Cause(ctx)) {
		return wire.Leaving{Reason: wire.AwayShutdown, Detail: "the system is shutting down"}
	}
	a.mu.Lock()
	staged, shutdown := a.staged != nil, a.shutdown
	if time.Since(a.shutdownAt) > shutdownMemory {
		shutdown = nil
	}
	a.mu.Unlock()
	if shutdown != nil {
		return *shutdown // announced by logind before the stop
	}
	if staged {
		return wire.Leaving{Reason: wire.AwayStopped, Detail: "restarting into an agent update",
			ExpectedBack: ptr(time.Now().Add(time.Minute).UTC())}
	}
	return wire.Leaving{Reason: wire.AwayStopped, Detail: "the agent was stopped"}
}

func ptr[T any](v T) *T { return &v }

// sendLeaving sends l on a last heartbeat and waits, bounded, for its
// ack, dropping other acks; it reports whether the broker acknowledged it.
func (a *Agent) sendLeaving(s network.Stream, seq *uint64, l wire.Leaving, acks <-chan wire.HeartbeatAck, readErr <-chan error, every time.Duration) bool {
	*seq++
	hb := wire.Heartbeat{Seq: *seq, Leaving: &l, CheckInSeq: a.ackedSeq.Load()}
	s.SetWriteDeadline(time.Now().Add(leaveAckWait))
	if err := wire.Write(s, &hb); err != nil {
		a.log.Warn("could not send the leaving notice", "reason", l.Reason, "err", err)
		return false
	}
	limit := time.NewTimer(min(leaveAckWait, every))
	defer limit.Stop()
	for {
		select {
		case ack := <-acks:
			if ack.Seq == hb.Seq {
				a.log.Info("told the broker why the bridge goes", "reason", l.Reason, "detail", l.Detail)
				return true
			}
		case <-readErr:
			return false
		case <-limit.C:
			return false
		}
	}
}

// udpFallback updates since when the bridge has found UDP blocked: set
// when the bridge to a broker that listens on QUIC came up over TCP or
// WebSocket, cleared when one comes up over QUIC. It runs on the bridge
// goroutine, which alone uses a.udpBlocked.
func (a *Agent) udpFallback(offered []ma.Multiaddr, got ma.Multiaddr) *time.Time {
	if strings.Contains(got.String(), "/quic-v1") {
		if !a.udpBlocked.IsZero() {
			a.log.Info("the bridge is on QUIC again: UDP is not blocked", "blocked_since", a.udpBlocked)
		}
		a.udpBlocked = time.Time{}
		a.mu.Lock()
		a.udpBlockedAt = nil
		a.mu.Unlock()
		return nil
	}
	quic := false
	for _, o := range offered {
		quic = quic || strings.Contains(o.String(), "/quic-v1")
	}
	if !quic {
		return nil // the broker offers no QUIC: nothing fell back
	}
	if a.udpBlocked.IsZero() {
		a.udpBlocked = time.Now().UTC()
		a.log.Warn("the bridge fell back from QUIC: this network seems to block UDP", "transport", got)
	}
	at := a.udpBlocked
	a.mu.Lock()
	a.udpBlockedAt = &at
	a.mu.Unlock()
	return &at
}

// applyAway puts into snap what it says of being away: the newest
// unclean end of a run, the metered policy in force and whether the
// connection is metered now.
func (a *Agent) applyAway(snap *wire.Snapshot) {
	mode, every := a.onMetered()
	a.mu.Lock()
	metered := a.metered
	a.mu.Unlock()
	if metered || mode != wire.MeteredNormal {
		// Only when they say something: a broker before 0.4.0 refuses a
		// snapshot with fields it does not know (it stores snapshots in
		// its own encoding), and an agent at the defaults must keep
		// checking in with it during a rolling upgrade.
		snap.Runtime.OnMetered, snap.Runtime.Metered = mode, metered
	}
	if a.isQuiet() {
		// Readiness judges staleness by the cadence the agent reports.
		snap.Runtime.CheckInIntervalSec = int(every / time.Second)
	}
	snap.LastUncleanEnd = a.lastUnclean
}

// startRun begins recording this run (Config.RecordRun) and learns how
// the previous one ended: what the first hello says of the time away,
// and whether the first check-in reports an unclean end.
func (a *Agent) startRun() {
	if !a.cfg.RecordRun {
		return
	}
	run, prev, err := lastrun.Open(lastrun.Config{Dir: a.cfg.StateDir, Logger: a.log})
	if err != nil {
		a.log.Warn("not recording this run: the next one cannot tell how it ended", "err", err)
		return
	}
	a.run = run
	a.lastUnclean = prev.LastUnclean
	now := time.Now().UTC()
	switch {
	case prev.First:
	case prev.Unclean != nil:
		a.unclean = true
		a.returned = &wire.Returned{What: wire.ReturnedUnclean, At: prev.Unclean.At.UTC(), Detail: prev.Unclean.Detail}
		a.log.Warn("the previous run ended uncleanly", "last_alive", prev.Unclean.At, "detail", prev.Unclean.Detail)
	case prev.Rebooted:
		a.returned = &wire.Returned{What: wire.ReturnedBooted, At: prev.Booted.UTC()}
		if took := now.Sub(prev.LastAlive); prev.Reason == wire.AwayShutdown && took > 0 && took < maxRebootTime {
			if _, err := a.db.EditAway(func(s *localdb.AwayState) { s.RebootSec = int64(took / time.Second) }); err != nil {
				a.log.Warn("could not keep the reboot's duration", "err", err)
			}
		}
	default:
		a.returned = &wire.Returned{What: wire.ReturnedRestarted, At: now}
	}
}

// maxRebootTime bounds a measured reboot: a longer gap was a power-off
// and a later start, not a reboot.
const maxRebootTime = 30 * time.Minute

// runStopped records a clean stop (or sleep) of this run with its reason.
func (a *Agent) runStopped(reason string) {
	if a.run != nil {
		a.run.Stopped(reason)
	}
}

// runResumed records that the run went on after all.
func (a *Agent) runResumed() {
	if a.run != nil {
		a.run.Resumed()
	}
}

// runAlive refreshes the run's marker (cheap; lastrun writes it once a
// minute).
func (a *Agent) runAlive() {
	if a.run != nil {
		a.run.Alive(time.Now())
	}
}
