package sessiond

import (
	"context"
	"fmt"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/sysevents"
)

// runSystem watches the machine (package sysevents: sleep, resume,
// shutdown, a metered connection) and makes the quiet-mode decision, until
// ctx is done. Before the machine sleeps or shuts down it has the bridge
// say so, and only then lets the system go on (Event.Release).
func (a *Agent) runSystem(ctx context.Context, w *sysevents.Watcher) {
	var events <-chan sysevents.Event // nil: nothing watched (Config.SystemBus "none")
	if w != nil {
		events = w.Events()
	}
	a.decideQuiet(ctx)
	alive := time.NewTicker(clockCheck)
	defer alive.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-alive.C:
			a.runAlive()
			if slept := sleptBetween(last, time.Now()); slept > minUnnoticedSleep {
				a.sleptUnannounced(now, slept)
			}
			last = time.Now()
		case <-a.quietKick:
			a.decideQuiet(ctx)
		case ev, ok := <-events:
			if !ok {
				events = nil // the watcher closed: nothing more to hear
				continue
			}
			a.onSystemEvent(ctx, ev)
			if ev.Kind == sysevents.Resume {
				last = time.Now() // the sleep was told: the clocks need not
			}
		}
	}
}

// onSystemEvent acts on one event of the machine's.
func (a *Agent) onSystemEvent(ctx context.Context, ev sysevents.Event) {
	switch ev.Kind {
	case sysevents.Sleep:
		detail := ev.Detail
		if detail == "" {
			detail = "the machine is going to sleep"
		}
		a.goAway(ctx, wire.Leaving{Reason: wire.AwayAsleep, Detail: detail}, asleepHold)
		a.runStopped(wire.AwayAsleep)
		ev.Release()
	case sysevents.Shutdown:
		l := wire.Leaving{Reason: wire.AwayShutdown, Detail: "the machine is shutting down"}
		if ev.Reboot {
			l.Detail = "the machine is rebooting"
			if back := a.rebootTime(); back > 0 {
				l.ExpectedBack = ptr(time.Now().Add(back).UTC().Truncate(time.Second))
			}
		} else if ev.Detail != "" {
			l.Detail = "the machine is shutting down (" + ev.Detail + ")"
		}
		a.mu.Lock()
		a.shutdown, a.shutdownAt = &l, time.Now()
		a.mu.Unlock()
		a.goAway(ctx, l, shutdownHold)
		a.runStopped(wire.AwayShutdown)
		ev.Release()
	case sysevents.Resume:
		a.runResumed()
		cancelled := ev.Detail == "shutdown cancelled"
		if cancelled {
			a.mu.Lock()
			a.shutdown = nil
			a.mu.Unlock()
		}
		if a.quietNow() {
			// Woken on a metered connection: the hold becomes quiet in
			// one step, so the bridge never comes up in between; a quiet
			// check-in tells the broker.
			a.setHold(a.quietLeaving(), 0)
			a.kickCheckIns()
			return
		}
		var r *wire.Returned // a cancelled shutdown: nothing happened
		if !cancelled {
			r = &wire.Returned{What: wire.ReturnedResumed, At: ev.At.UTC(), Detail: ev.Detail}
		}
		if !a.comeBack("", r) {
			a.log.Info("resumed, though no sleep was announced")
		}
	case sysevents.Metered:
		a.setMetered(ev.Metered)
		a.decideQuiet(ctx)
	}
}

// rebootTime is how long the machine took to come back from its last
// announced reboot (as the agent measured it), or zero when unknown.
func (a *Agent) rebootTime() time.Duration {
	st, err := a.db.Away()
	if err != nil {
		return 0
	}
	return time.Duration(st.RebootSec) * time.Second
}

// Sleep that no system event announced (macOS, where the agent gets no
// notices; a Linux machine without logind) still shows in the clocks:
// Go's monotonic clock stops while the machine sleeps (CLOCK_MONOTONIC on
// Linux, mach_absolute_time on macOS) and the wall clock does not. (On
// Windows Go's monotonic clock counts sleep too, so this sees nothing
// there; the service's power events tell instead.)
const (
	// clockCheck is how often the clocks are compared (and the run's
	// marker refreshed; lastrun writes it once a minute).
	clockCheck = 10 * time.Second
	// minUnnoticedSleep is the gap between the clocks taken for a sleep:
	// well past what a clock adjustment (NTP slews; steps are rare)
	// makes in clockCheck.
	minUnnoticedSleep = 30 * time.Second
)

// sleptBetween is how much longer the wall clock ran than the monotonic
// clock from prev to now, both read with time.Now.
func sleptBetween(prev, now time.Time) time.Duration {
	return now.Round(0).Sub(prev.Round(0)) - now.Sub(prev)
}

// sleptUnannounced records a sleep the clocks showed: unless one was
// announced (the hold says asleep), the next hello says the machine
// resumed, and how long it slept.
func (a *Agent) sleptUnannounced(now time.Time, slept time.Duration) {
	if l, _, _ := a.held(); l != nil {
		if l.Reason == wire.AwayAsleep {
			// Announced, but no resume came (the bus restarted while the
			// machine slept): the clocks say it is awake.
			a.log.Info("awake again, though no resume was announced", "slept", slept.Round(time.Second))
			a.comeBack(wire.AwayAsleep, &wire.Returned{What: wire.ReturnedResumed, At: now.UTC(),
				Detail: fmt.Sprintf("slept about %s", slept.Round(time.Minute))})
			a.runResumed()
			a.kickQuiet()
		}
		return
	}
	a.log.Info("the machine slept without notice (the clocks show it)", "slept", slept.Round(time.Second))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.returned == nil {
		a.returned = &wire.Returned{What: wire.ReturnedResumed, At: now.UTC(),
			Detail: fmt.Sprintf("slept about %s without notice", slept.Round(time.Minute))}
	}
}
