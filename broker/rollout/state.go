package rollout

import (
	"fmt"
	"maps"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// A rollout's own state changes (a wave starts, it pauses, it ends) are
// the only writes of its record after it starts; each is audited.

// setState writes a change of rollout v's state, replicates it and
// audits it as event by who.
func (r *Room) setState(v *view, event, who, detail string, f func(*store.RolloutRecord) error) (store.RolloutRecord, error) {
	out, err := r.deps.Store.UpdateRollout(v.r.ID, func(rec *store.RolloutRecord) error {
		if rec.State != v.r.State {
			return fmt.Errorf("rollout %s is %s now, not %s", rec.ID, rec.State, v.r.State)
		}
		rec.Changed = r.cfg.Now().UTC()
		return f(rec)
	})
	if err != nil {
		r.cfg.Logger.Info("rollout not changed", "rollout", v.r.ID, "event", event, "err", err)
		return out, err
	}
	r.deps.Replicated(store.Key{Kind: store.KindRollout, ID: out.ID})
	if event != "" {
		r.deps.Audit.Add(wire.AuditEntry{Event: event, Technician: who, Detail: "rollout " + out.ID + " (" + out.Version + "): " + detail})
	}
	r.cfg.Logger.Info("rollout "+out.State, "rollout", out.ID, "version", out.Version, "detail", detail)
	return out, nil
}

// driver is how the audit log names the driver's own decisions.
func (r *Room) driver() string { return "broker " + r.cfg.Name }

// pause stops rollout v for failures, which opens its alert.
func (r *Room) pause(v *view, now time.Time, reason string) {
	_, err := r.setState(v, EventPaused, r.driver(), reason, func(rec *store.RolloutRecord) error {
		rec.State, rec.PausedBy, rec.PausedAt, rec.PausedReason = wire.RolloutPaused, "", now.UTC(), clip(reason)
		return nil
	})
	if err == nil {
		r.changed()
	}
}

// startRest starts wave 1: every canary is through.
func (r *Room) startRest(v *view, now time.Time) {
	r.setState(v, "", "", "canary wave through; wave 1 starts", func(rec *store.RolloutRecord) error {
		rec.State, rec.WaveStarted[1] = wire.RolloutRolling, now.UTC()
		return nil
	})
	r.Kick()
}

// finish ends rollout v: every machine is through.
func (r *Room) finish(v *view, now time.Time) {
	detail := countsText(v.counts)
	if _, err := r.setState(v, EventDone, r.driver(), detail, func(rec *store.RolloutRecord) error {
		rec.State, rec.Ended, rec.Final = wire.RolloutDone, now.UTC(), v.final(false)
		return nil
	}); err == nil {
		r.changed()
	}
}

// stopWithdrawn aborts rollout v, whose release was withdrawn.
func (r *Room) stopWithdrawn(v *view, now time.Time) {
	reason := "release " + v.r.Version + " was withdrawn"
	who := v.rel.by
	if who == "" {
		who = r.driver()
	}
	if _, err := r.setState(v, EventAborted, who, reason, func(rec *store.RolloutRecord) error {
		rec.State, rec.Ended, rec.PausedReason, rec.Final = wire.RolloutAborted, now.UTC(), reason, v.final(true)
		return nil
	}); err == nil {
		r.changed()
		r.Kick()
	}
}

// final is each client's machines of v by step, as the rollout's record
// keeps them once it ends; aborting, the machines still waiting or
// queued count as cancelled, as they will be.
func (v *view) final(aborting bool) map[string]map[string]int {
	out := map[string]map[string]int{}
	for i := range v.steps {
		s := &v.steps[i]
		step := s.Step
		if aborting && (step == wire.StepWaiting || step == wire.StepQueued && !s.started && !s.running) {
			step = wire.StepCancelled
		}
		c := out[s.client]
		if c == nil {
			c = map[string]int{}
			out[s.client] = c
		}
		c[step]++
	}
	return out
}

// finalCounts stores the counts of aborted rollout v once its queued
// jobs are cancelled, when they differ from those kept at the abort (a
// machine that was updating then has finished since).
func (r *Room) finalCounts(v *view) {
	f := v.final(false)
	if maps.EqualFunc(f, v.r.Final, maps.Equal) {
		return
	}
	r.setState(v, "", "", "final counts", func(rec *store.RolloutRecord) error {
		rec.Final = f
		return nil
	})
}

// countsText is the non-zero counts, in step order.
func countsText(counts map[string]int) string {
	var out []byte
	for _, s := range allSteps {
		if n := counts[s]; n > 0 {
			if len(out) > 0 {
				out = append(out, ", "...)
			}
			out = fmt.Appendf(out, "%d %s", n, s)
		}
	}
	if len(out) == 0 {
		return "no machines"
	}
	return string(out)
}

// clip bounds a reason to what a record holds.
func clip(s string) string {
	if len(s) > 1000 {
		return s[:1000] + "…"
	}
	return s
}
