package rollout

import (
	"fmt"
	"strings"
	"time"

	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// scopeOf is what technician t may see of a rollout: the machines of its
// clients.
func scopeOf(t *wire.Technician) func(client string) bool {
	return func(client string) bool { return scope.Visible(t, client) }
}

// List runs OpRolloutList: every rollout that holds a machine t may see,
// newest first, with counts of the machines t may see. A rollout that
// ended shows the counts its record kept then (Final): its steps are
// not worked out again.
func (r *Room) List(t *wire.Technician) ([]wire.Rollout, *wire.Error) {
	recs, err := r.deps.Store.Rollouts(nil)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "rollouts: %v", err)
	}
	var moving []store.RolloutRecord
	for i := range recs {
		if recs[i].Active() || recs[i].Final == nil {
			moving = append(moving, recs[i])
		}
	}
	views, err := r.viewAll(moving, r.cfg.Now())
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "rollouts: %v", err)
	}
	byID := make(map[string]*view, len(views))
	for _, v := range views {
		byID[v.r.ID] = v
	}
	out := []wire.Rollout{}
	vis := scopeOf(t)
	for i := len(recs) - 1; i >= 0; i-- {
		v, ok := byID[recs[i].ID]
		if !ok {
			v = &view{r: recs[i]}
		}
		if w, ok := toWire(v, vis, false); ok {
			out = append(out, w)
		}
	}
	return out, nil
}

// Status runs OpRolloutStatus: one rollout with each machine's step.
func (r *Room) Status(t *wire.Technician, a *wire.RolloutIDArgs) (wire.Rollout, *wire.Error) {
	v, werr := r.find(t, a.ID)
	if werr != nil {
		return wire.Rollout{}, werr
	}
	w, _ := toWire(v, scopeOf(t), true)
	return w, nil
}

// Pause runs OpRolloutPause: no update job of the rollout is sent until
// it is resumed. An admin's pause opens no alert.
func (r *Room) Pause(t *wire.Technician, a *wire.RolloutIDArgs) (wire.Rollout, *wire.Error) {
	return r.change(t, a, EventPaused, func(v *view, rec *store.RolloutRecord) *wire.Error {
		if rec.State == wire.RolloutPaused {
			return wire.Errorf(wire.CodeConflict, "rollout %s is paused already: %s", rec.ID, rec.PausedReason)
		}
		rec.State, rec.PausedBy, rec.PausedAt, rec.PausedReason = wire.RolloutPaused, t.Name, rec.Changed, "paused by "+t.Name
		return nil
	})
}

// Resume runs OpRolloutResume: the rollout goes on from where it was.
// The failures that paused it are accepted: the thresholds count only
// what fails from now on, on other machines. Resuming a rollout whose
// canary wave is through (it paused on a canary's failure, or because
// no canary updated) starts wave 1: the admin has judged the canaries.
func (r *Room) Resume(t *wire.Technician, a *wire.RolloutIDArgs) (wire.Rollout, *wire.Error) {
	return r.change(t, a, EventResumed, func(v *view, rec *store.RolloutRecord) *wire.Error {
		if rec.State != wire.RolloutPaused {
			return wire.Errorf(wire.CodeConflict, "rollout %s is %s, not paused", rec.ID, rec.State)
		}
		rec.State = wire.RolloutCanary
		if rec.WaveStarted[1].IsZero() && v.open[0] == 0 {
			rec.WaveStarted[1] = rec.Changed
		}
		if !rec.WaveStarted[1].IsZero() {
			rec.State = wire.RolloutRolling
		}
		rec.PausedBy, rec.PausedReason, rec.PausedAt, rec.Accepted = "", "", time.Time{}, v.tally
		rec.AcceptedFailed = []string{}
		for i := range v.steps {
			if s := &v.steps[i]; s.failed() {
				rec.AcceptedFailed = append(rec.AcceptedFailed, s.MachineID)
			}
		}
		return nil
	})
}

// Abort runs OpRolloutAbort: the rollout ends; its queued update jobs are
// cancelled (the first batch now, the rest by the driver and the queue's
// gate), while machines already updating finish. Aborting a rollout that
// has ended changes nothing and is no error.
// The reply's paused reason says how many queued updates were cancelled
// at once.
func (r *Room) Abort(t *wire.Technician, a *wire.RolloutIDArgs) (wire.Rollout, *wire.Error) {
	return r.change(t, a, EventAborted, func(v *view, rec *store.RolloutRecord) *wire.Error {
		rec.State, rec.Ended, rec.PausedReason, rec.Final = wire.RolloutAborted, rec.Changed, "aborted by "+t.Name, v.final(true)
		return nil
	})
}

// change runs an admin's change f of a rollout that has not ended,
// audited as event.
func (r *Room) change(t *wire.Technician, a *wire.RolloutIDArgs, event string, f func(*view, *store.RolloutRecord) *wire.Error) (wire.Rollout, *wire.Error) {
	if !t.Admin {
		return wire.Rollout{}, wire.Errorf(wire.CodeForbidden, "only an admin changes a rollout")
	}
	v, werr := r.find(t, a.ID)
	if werr != nil {
		return wire.Rollout{}, werr
	}
	if !v.r.Active() {
		if event == EventAborted { // nothing left to stop: scripts may abort what has ended
			w, _ := toWire(v, scopeOf(t), false)
			return w, nil
		}
		return wire.Rollout{}, wire.Errorf(wire.CodeConflict, "rollout %s is %s", v.r.ID, v.r.State)
	}
	var refused *wire.Error
	out, err := r.setState(v, event, t.Name, strings.TrimPrefix(event, "rollout.")+" by "+t.Name, func(rec *store.RolloutRecord) error {
		if refused = f(v, rec); refused != nil {
			return refused
		}
		return nil
	})
	switch {
	case refused != nil:
		return wire.Rollout{}, refused
	case err != nil:
		return wire.Rollout{}, wire.Errorf(wire.CodeConflict, "%v", err)
	}
	cancelled := -1
	if out.State == wire.RolloutAborted {
		v.r = out
		cancelled = r.cancelQueued(v, r.cfg.Batch, "cancelled: rollout "+out.ID+" was aborted by "+t.Name)
	}
	r.changed()
	r.Kick()
	w, werr := r.show(&out, scopeOf(t), false)
	if werr == nil && cancelled >= 0 {
		w.PausedReason += fmt.Sprintf("; %d queued updates cancelled", cancelled)
		if left := len(v.queued) - cancelled; left > 0 {
			w.PausedReason += fmt.Sprintf(" (%d more to cancel)", left)
		}
	}
	return w, werr
}

// find resolves a rollout ID prefix among the rollouts t may see.
func (r *Room) find(t *wire.Technician, prefix string) (*view, *wire.Error) {
	recs, err := r.deps.Store.Rollouts(func(rec *store.RolloutRecord) bool { return strings.HasPrefix(rec.ID, prefix) })
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "rollouts: %v", err)
	}
	views, err := r.viewAll(recs, r.cfg.Now())
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "rollouts: %v", err)
	}
	var found []*view
	for _, v := range views {
		if _, ok := toWire(v, scopeOf(t), false); ok {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 0:
		return nil, wire.Errorf(wire.CodeNotFound, "no rollout %s among the rollouts you can see", prefix)
	case 1:
		return found[0], nil
	}
	return nil, wire.Errorf(wire.CodeConflict, "rollout %s is ambiguous: give more digits", prefix)
}

// show is rec as t sees it now.
func (r *Room) show(rec *store.RolloutRecord, vis func(string) bool, machines bool) (wire.Rollout, *wire.Error) {
	views, err := r.viewAll([]store.RolloutRecord{*rec}, r.cfg.Now())
	if err != nil {
		return wire.Rollout{}, wire.Errorf(wire.CodeInternal, "rollout %s: %v", rec.ID, err)
	}
	w, _ := toWire(views[0], vis, machines)
	return w, nil
}

// toWire is v as a technician who sees the clients vis accepts sees
// it, and whether that technician sees any of its machines.
func toWire(v *view, vis func(string) bool, machines bool) (wire.Rollout, bool) {
	rec := &v.r
	out := wire.Rollout{ID: rec.ID, Version: rec.Version, Clients: rec.Clients, All: rec.All, CanaryPct: rec.CanaryPct,
		HealthWindowSec: rec.HealthWindowSec, MaxParallel: rec.MaxParallel, FailPct: rec.FailPct, Rollback: rec.Rollback,
		RequiresConsent: rec.RequiresConsent, State: rec.State, PausedReason: rec.PausedReason, CreatedBy: rec.CreatedBy,
		CreatedAt: rec.CreatedAt, Updated: rec.Changed, Counts: make(map[string]int, len(allSteps))}
	for _, s := range allSteps {
		out.Counts[s] = 0
	}
	seen := false
	if v.steps == nil && rec.Final != nil { // ended: the counts it kept
		for client, counts := range rec.Final {
			if !vis(client) {
				continue
			}
			seen = true
			for step, n := range counts {
				out.Counts[step] += n
			}
		}
		return out, seen
	}
	for i := range v.steps {
		s := &v.steps[i]
		if !vis(s.client) {
			continue
		}
		seen = true
		out.Counts[s.Step]++
		if machines {
			out.Machines = append(out.Machines, s.RolloutMachine)
		}
	}
	return out, seen
}
