package rollout

import (
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// publish keeps the views of the rollouts still moving, for the gate and
// the cards, and starts counting the gate's admissions afresh: the jobs
// it let through are in the views now.
func (r *Room) publish(views []*view) {
	byID := make(map[string]*view, len(views))
	machines := map[string][]ref{}
	for i := len(views) - 1; i >= 0; i-- { // newest first
		v := views[i]
		byID[v.r.ID] = v
		if !v.r.Active() {
			continue
		}
		for j := range v.steps {
			s := &v.steps[j]
			machines[s.MachineID] = append(machines[s.MachineID], ref{view: v, step: j})
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.views, r.machines = byID, machines
	clear(r.admitted)
	for _, v := range views {
		for j := range v.steps {
			r.noteReportLocked(v.steps[j].MachineID, v.steps[j].report)
		}
	}
}

// Admit implements the queue's gate: whether queued update job j may be
// sent now. It returns run, or a reason to cancel the job, or neither:
// the job waits (its rollout is paused, max-parallel machines of it are
// updating, or its records have not reached this broker yet). A machine
// that no longer needs the update (its agent got there another way) has
// its job cancelled as skipped.
func (r *Room) Admit(j *store.JobRecord) (run bool, cancel string) {
	if j.Update == nil {
		return true, ""
	}
	if j.Update.Rollout == "" {
		return false, "an update job outside any rollout"
	}
	rel, found := r.release(j.Update.Version)
	switch {
	case !found:
		return false, ""
	case rel.withdrawn:
		return false, "cancelled: release " + j.Update.Version + " was withdrawn"
	}
	r.mu.Lock()
	v, ok := r.views[j.Update.Rollout]
	r.mu.Unlock()
	if !ok {
		return false, r.unknown(j.Update.Rollout)
	}
	switch v.r.State {
	case wire.RolloutAborted:
		return false, "cancelled: rollout " + v.r.ID + " was aborted"
	case wire.RolloutDone:
		return false, "cancelled: rollout " + v.r.ID + " ended"
	case wire.RolloutPaused:
		return false, ""
	}
	if m, ok := r.deps.Store.Machine(j.Machine); ok {
		st := &stepper{r: &v.r, rel: rel}
		if why := st.skip(&m); why != "" {
			return false, skippedPrefix + why
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if v.inflight+r.admitted[v.r.ID] >= v.r.MaxParallel {
		return false, ""
	}
	r.admitted[v.r.ID]++
	return true, ""
}

// skippedPrefix starts the reason of a job the gate cancelled because
// its machine no longer needs it: its step is skipped, not cancelled.
const skippedPrefix = "skipped: "

// unknown is the verdict on a job whose rollout the last tick did not
// look at: an ended rollout's job is cancelled, one not stored here yet
// waits.
func (r *Room) unknown(id string) string {
	rec, found, err := r.deps.Store.Rollout(id)
	if err != nil || !found || rec.Active() {
		return "" // not replicated here yet, or started since the last tick
	}
	if rec.State == wire.RolloutAborted {
		return "cancelled: rollout " + id + " was aborted"
	}
	return "cancelled: rollout " + id + " ended"
}
