package queue

import (
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// admit asks the gate whether queued update job a may be sent now,
// cancels it when the gate says so, and reports whether to send it.
func (q *Queue) admit(a *attempt) bool {
	if q.deps.Gate == nil {
		return false
	}
	run, cancel := q.deps.Gate.Admit(&a.j)
	if cancel != "" {
		q.finish(a, store.JobCancelled, store.JobResult{ExitCode: -1, Warning: a.warning, Error: cancel})
		return false
	}
	return run
}

// takeUpdate takes one of the maxUpdates places of update jobs in flight
// here, or reports false when all are taken (the job waits for a later
// round).
func (q *Queue) takeUpdate() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.updates >= maxUpdates {
		return false
	}
	q.updates++
	return true
}

// dropUpdate gives back a place taken by takeUpdate.
func (q *Queue) dropUpdate() {
	q.mu.Lock()
	q.updates--
	q.mu.Unlock()
}

// order is the update a's job carries (nil for a script job), read from
// the release record as published. It reports false when the release is
// not stored here (yet). A running job whose release was withdrawn is
// only asked about: if its agent never took it, it never will.
func (q *Queue) order(a *attempt) (*wire.UpdateOrder, bool) {
	u := a.j.Update
	if u == nil {
		return nil, true
	}
	if q.deps.Releases == nil {
		return nil, false
	}
	rel, found, err := q.deps.Releases.Release(u.Version)
	if err != nil || !found {
		q.cfg.Logger.Info("update job waits for its release", "job", a.j.ID, "version", u.Version, "err", err)
		return nil, false
	}
	a.withdrawn = rel.Withdrawn && a.j.State == store.JobRunning
	return &wire.UpdateOrder{Version: u.Version, Manifest: rel.Manifest, Signature: rel.Signature, Rollout: u.Rollout,
		Rollback: u.Rollback, HealthWindowSec: u.HealthWindowSec}, true
}
