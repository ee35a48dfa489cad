package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Lifetime bounds a rollout's update jobs: a machine offline longer than
// this since the rollout started does not get the update from it.
const Lifetime = 30 * 24 * time.Hour

// tick looks at every rollout once: it works out the steps of those
// still moving (on every broker, for the gate and the cards), copies
// update reports taken here into their jobs, and, for the rollouts this
// broker drives, moves them on. Each tick writes at most Config.Batch
// jobs.
func (r *Room) tick() {
	now := r.cfg.Now()
	recs, err := r.deps.Store.RolloutsWhere(r.looked)
	if err != nil {
		r.cfg.Logger.Warn("rollouts not read", "err", err)
		return
	}
	views, err := r.viewAll(recs, now)
	if err != nil {
		r.cfg.Logger.Warn("rollout jobs not read", "err", err)
		return
	}
	r.publish(views)
	r.scanReports(now)
	budget := r.cfg.Batch
	budget -= r.observe(views, budget)
	for _, v := range views {
		if budget <= 0 {
			break
		}
		if r.drives(&v.r) {
			budget -= r.drive(v, now, budget)
		} else if v.r.State == wire.RolloutAborted && len(v.queued) == 0 {
			r.markClean(v.r.ID)
		}
	}
}

// looked reports whether a tick looks at rollout id in state: it is
// active, or aborted and may still have queued jobs to cancel. The
// others cost a tick nothing.
func (r *Room) looked(id, state string) bool {
	switch state {
	case wire.RolloutCanary, wire.RolloutRolling, wire.RolloutPaused:
		return true
	case wire.RolloutAborted:
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.clean[id]
	}
	return false
}

// markClean notes that aborted rollout id has no queued job left, so
// ticks stop reading it, and forgets its job IDs.
func (r *Room) markClean(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clean[id] = true
	delete(r.ids, id)
}

// viewAll works out the views of recs.
func (r *Room) viewAll(recs []store.RolloutRecord, now time.Time) ([]*view, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	f, err := r.look(recs)
	if err != nil {
		return nil, err
	}
	out := make([]*view, len(recs))
	for i := range recs {
		out[i] = r.view(&recs[i], f, now)
	}
	return out, nil
}

// drive moves one rollout on and returns how many jobs it wrote.
func (r *Room) drive(v *view, now time.Time, budget int) int {
	switch {
	case v.r.State == wire.RolloutAborted:
		return r.cancelQueued(v, budget, "cancelled: rollout "+v.r.ID+" was aborted")
	case !v.relFound:
		return 0 // the release record has not reached this broker yet
	case v.rel.withdrawn:
		r.stopWithdrawn(v, now)
		return 0
	case v.r.State == wire.RolloutPaused:
		return 0
	}
	if reason := v.failing(); reason != "" {
		r.pause(v, now, reason)
		return 0
	}
	if v.r.State == wire.RolloutCanary && v.open[0] == 0 {
		if why := v.unproven(); why != "" {
			r.pause(v, now, why)
			return 0
		}
		r.startRest(v, now)
		return 0 // the next tick queues wave 1 from the new record
	}
	if v.r.State == wire.RolloutRolling && v.open[0] == 0 && v.open[1] == 0 {
		r.finish(v, now)
		return 0
	}
	return r.queueDue(v, now, budget)
}

// failing says why v must pause, or "": a canary failed or rolled back,
// or more of wave 1's started machines failed than its threshold allows
// (counting from the last resume: failures of machines that had failed
// then were accepted).
func (v *view) failing() string {
	w := v.wave()
	t, acc := v.tally[w], v.r.Accepted[w]
	accepted := make(map[string]bool, len(v.r.AcceptedFailed))
	for _, id := range v.r.AcceptedFailed {
		accepted[id] = true
	}
	failed, started := 0, t.Started-acc.Started
	var last mstep
	for _, s := range v.steps {
		if s.Wave == w && s.failed() && !accepted[s.MachineID] {
			failed++
			if !s.Updated.Before(last.Updated) {
				last = s
			}
		}
	}
	if v.r.AcceptedFailed == nil && acc.Failed > 0 { // a record resumed before the set was kept
		failed = t.Failed - acc.Failed
	}
	if failed <= 0 || last.MachineID == "" {
		return ""
	}
	what := stepWords(last.Step)
	if w == 0 {
		return fmt.Sprintf("canary %s %s: %s", last.Machine, what, last.Detail)
	}
	if failed*100 <= v.r.FailPct*started {
		return ""
	}
	return fmt.Sprintf("%d of %d machines started in wave 1 failed or rolled back (limit %d%%); last: %s %s: %s",
		failed, started, v.r.FailPct, last.Machine, what, last.Detail)
}

// stepWords is a step as a sentence says it ("rolled back").
func stepWords(step string) string { return strings.ReplaceAll(step, "-", " ") }

// unproven says why the canary wave, every canary of which is through,
// proves nothing, or "": no canary updated (they were cancelled, expired
// or skipped) and not every canary was skipped as already on the
// version. Wave 1 must not start on a canary wave that did not run.
func (v *view) unproven() string {
	current, n := 0, 0
	counts := map[string]int{}
	for i := range v.steps {
		s := &v.steps[i]
		if s.Wave != 0 {
			continue
		}
		n++
		switch {
		case s.Step == wire.StepUpdated:
			return ""
		case s.current:
			current++
		case s.expired:
			counts["expired"]++
		default:
			counts[stepWords(s.Step)]++
		}
	}
	if current == n {
		return ""
	}
	if current > 0 {
		counts["already on "+v.r.Version] = current
	}
	var parts []string
	for _, k := range []string{"cancelled", "expired", "skipped", "failed", "rolled back", "already on " + v.r.Version} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	return "no canary updated (" + strings.Join(parts, ", ") + ")"
}

// queueDue queues update jobs for the machines of the current wave that
// are due, up to budget, and returns how many it queued.
func (r *Room) queueDue(v *view, now time.Time, budget int) int {
	var js []store.JobRecord
	for i := range v.steps {
		s := &v.steps[i]
		if len(js) == budget {
			break
		}
		if !s.due || s.Wave != v.wave() {
			continue
		}
		if m, ok := r.deps.Store.Machine(s.MachineID); ok {
			js = append(js, updateJob(&v.r, &m, now))
		}
	}
	if len(js) == 0 {
		return 0
	}
	skipped, err := r.deps.Store.CreateNewJobs(js)
	if err != nil {
		r.cfg.Logger.Warn("update jobs not queued", "rollout", v.r.ID, "err", err)
		return 0
	}
	if len(skipped) > 0 {
		// Another broker driving during a partition queued the same jobs
		// (their IDs are derived), or a job was deleted: the next look
		// sees them, and a deleted job's machine as cancelled.
		r.cfg.Logger.Warn("update jobs stored already", "rollout", v.r.ID, "jobs", len(skipped), "first", skipped[0])
	}
	keys := make([]store.Key, 0, len(js))
	for i := range js {
		if !slices.Contains(skipped, js[i].ID) {
			keys = append(keys, store.Key{Kind: store.KindJob, ID: js[i].ID})
		}
	}
	if len(keys) > 0 {
		r.deps.Replicated(keys...)
	}
	r.cfg.Logger.Info("update jobs queued", "rollout", v.r.ID, "wave", v.wave(), "jobs", len(js))
	return len(js)
}

// updateJob is machine m's update job in rollout rec: an elevated job
// with no script, whose ID is derived from both, so a second driver
// queues the same job.
func updateJob(rec *store.RolloutRecord, m *store.Machine, now time.Time) store.JobRecord {
	j := store.JobRecord{ID: JobID(rec.ID, m.ID), Machine: m.ID, Client: m.Client, Name: m.Name, Mode: wire.ModeElevated,
		RequiresConsent: rec.RequiresConsent, CreatedBy: rec.CreatedBy, CreatedAt: now.UTC(),
		Expires: rec.CreatedAt.Add(Lifetime), PlannedAgent: m.AgentVersion,
		Update: &store.JobUpdate{Version: rec.Version, Rollout: rec.ID, Rollback: rec.Rollback, HealthWindowSec: rec.HealthWindowSec}}
	if c := m.LastCheckIn; c != nil {
		j.PlannedSeq, j.PlannedBoot = c.Seq, c.BootID
	}
	return j
}

// JobID is the ID of machine's update job in rollout: 32 hex digits, as
// every job ID.
func JobID(rollout, machine string) string {
	sum := sha256.Sum256([]byte("readymesh rollout job\x00" + rollout + "\x00" + machine))
	return hex.EncodeToString(sum[:16])
}

// cancelQueued cancels up to budget of v's queued jobs and returns how
// many it cancelled; once none is left, the rollout is clean.
func (r *Room) cancelQueued(v *view, budget int, why string) int {
	ids := v.queued[:min(len(v.queued), budget)]
	if len(ids) == 0 {
		r.finalCounts(v)
		r.markClean(v.r.ID)
		return 0
	}
	now := r.cfg.Now().UTC()
	out, err := r.deps.Store.UpdateJobs(ids, func(j *store.JobRecord) error {
		if j.State != store.JobQueued {
			return fmt.Errorf("job %s is %s", j.ID, j.State)
		}
		j.State, j.Broker = store.JobCancelled, r.cfg.Name
		j.Result = &store.JobResult{ExitCode: -1, Error: why, Finished: now}
		return nil
	})
	if err != nil {
		r.cfg.Logger.Warn("queued update jobs not cancelled", "rollout", v.r.ID, "err", err)
		return 0
	}
	keys := make([]store.Key, len(out))
	for i := range out {
		keys[i] = store.Key{Kind: store.KindJob, ID: out[i].ID}
	}
	if len(keys) > 0 {
		r.deps.Replicated(keys...)
	}
	r.cfg.Logger.Info("queued update jobs cancelled", "rollout", v.r.ID, "jobs", len(out))
	return len(out)
}
