package sessiond

import (
	"context"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/sysevents"
)

// runSystem watches the machine (package sysevents: sleep, resume,
// shutdown, a metered connection) and makes the quiet-mode decision, until
// ctx is done. Before the machine sleeps or shuts down it has the bridge
// say so, and only then lets the system go on (Event.Release).
func (a *Agent) runSystem(ctx context.Context, w *sysevents.Watcher) {
	a.decideQuiet(ctx)
	alive := time.NewTicker(time.Minute)
	defer alive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-alive.C:
			a.runAlive()
		case <-a.quietKick:
			a.decideQuiet(ctx)
		case ev, ok := <-w.Events():
			if !ok {
				return
			}
			a.onSystemEvent(ctx, ev)
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
		a.goAway(ctx, wire.Leaving{Reason: wire.AwayAsleep, Detail: detail}, 0)
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
		a.goAway(ctx, l, shutdownHold)
		a.runStopped(wire.AwayShutdown)
		ev.Release()
	case sysevents.Resume:
		a.runResumed()
		if a.quietNow() {
			// Woken on a metered connection: stay down, as quiet.
			a.comeBack(wire.AwayAsleep, nil)
			a.decideQuiet(ctx)
			return
		}
		what := wire.ReturnedResumed
		if ev.Detail == "shutdown cancelled" {
			what = wire.ReturnedRestarted
		}
		if !a.comeBack("", &wire.Returned{What: what, At: ev.At.UTC(), Detail: ev.Detail}) {
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
