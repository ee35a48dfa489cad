package queue

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/readymesh/readymesh/broker/store"
)

// maxDispatch bounds the machines whose jobs run at once on one broker.
const maxDispatch = 64

// maxUpdates bounds the update jobs in flight at once on one broker, out
// of maxDispatch: an update holds its place for a download of tens of
// megabytes, and a rollout of thousands of machines must leave places
// for technicians' scripts.
const maxUpdates = 32

// Run looks for work every second, and at once when kicked, until ctx
// ends; then it waits for the jobs in flight.
func (q *Queue) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxDispatch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-q.wake:
		}
		byMachine, err := q.open()
		if err != nil {
			continue
		}
		if q.testOnlyOpened != nil {
			q.testOnlyOpened(byMachine)
		}
		for id, jobs := range byMachine {
			if q.deps.Reach.Online(id) && q.claimMachine(id, slots) {
				wg.Go(func() { q.runMachine(ctx, id, jobs, slots) })
			}
		}
	}
}

// open returns the jobs that still need this broker, by machine, and
// notes which machines have work pending.
func (q *Queue) open() (map[string][]store.JobRecord, error) {
	js, err := q.deps.Store.Jobs(due)
	if err != nil {
		return nil, err
	}
	byMachine := map[string][]store.JobRecord{}
	pending := map[string]bool{}
	for _, j := range js {
		byMachine[j.Machine] = append(byMachine[j.Machine], j)
		pending[j.Machine] = true
	}
	q.mu.Lock()
	q.pending = pending
	q.mu.Unlock()
	return byMachine, nil
}

// claimMachine marks id busy here and takes a dispatch slot, or reports
// false when id is busy already or every slot is taken (next round).
func (q *Queue) claimMachine(id string, slots chan struct{}) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.busy[id] {
		return false
	}
	select {
	case slots <- struct{}{}:
		q.busy[id] = true
		return true
	default:
		return false
	}
}

// runMachine moves id's jobs on, oldest first, one at a time: a job that
// has not ended (its answer lost, its script still running) holds the
// ones after it.
//
// jobs is a snapshot taken before id was claimed: a job in it may have
// ended since (sent by the round that held id until then), been
// cancelled, or been taken by another broker. Only the claim stops
// that, so each job is read again once id is claimed, and the stored
// copy is sent only if it is still due in the state the snapshot saw.
// Otherwise the claim is let go and the dispatcher looks again at once,
// from a snapshot taken after the change.
func (q *Queue) runMachine(ctx context.Context, id string, jobs []store.JobRecord, slots chan struct{}) {
	changed := false
	defer func() {
		<-slots
		q.mu.Lock()
		delete(q.busy, id)
		q.mu.Unlock()
		if changed {
			q.Kick() // after the release, so the next round can claim id
		}
	}()
	for _, seen := range jobs {
		if ctx.Err() != nil || !q.deps.Reach.Online(id) {
			return
		}
		j, ok, err := q.reread(seen)
		if err != nil {
			q.cfg.Logger.Warn("job not read again after its claim; left for the next round", "job", seen.ID, "err", err)
			return
		}
		if !ok {
			q.cfg.Logger.Debug("job changed since the snapshot; not sent from it", "job", seen.ID, "was", seen.State, "now", j.State)
			changed = true
			return
		}
		if !q.dispatch(ctx, j) {
			return
		}
	}
}

// reread reads seen's job from the store and reports whether it is still
// due in the state seen has; j is the stored copy (zero when the job is
// gone).
func (q *Queue) reread(seen store.JobRecord) (j store.JobRecord, ok bool, err error) {
	js, err := q.deps.Store.JobsByID([]string{seen.ID})
	if err != nil {
		return store.JobRecord{}, false, fmt.Errorf("read job %s: %w", seen.ID, err)
	}
	if len(js) != 1 {
		return store.JobRecord{}, false, nil
	}
	j = js[0]
	return j, j.State == seen.State && due(&j), nil
}

// due reports whether j still needs a broker: queued, running, or a
// cancellation that raced a start and waits for the agent's word.
func due(j *store.JobRecord) bool {
	return !j.Deleted && (j.State == store.JobQueued || j.State == store.JobRunning || cancelledAfterStart(j))
}

// cancelledAfterStart: a cancellation that raced with a start elsewhere;
// the agent's record says whether the job ran.
func cancelledAfterStart(j *store.JobRecord) bool {
	return j.State == store.JobCancelled && j.Result != nil && j.Result.Session != "" && j.Result.Finished.IsZero()
}
