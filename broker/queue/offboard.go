package queue

import (
	"errors"
	"fmt"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// CancelMachine cancels the queued jobs of a machine removed from the
// fleet, as by, and returns how many. Jobs already running or finished
// keep their state: they happened, and the audit log keeps them.
func (q *Queue) CancelMachine(id, by string) (int, error) {
	jobs, err := q.deps.Store.Jobs(func(j *store.JobRecord) bool { return j.Machine == id && j.State == store.JobQueued })
	if err != nil {
		return 0, fmt.Errorf("queue: jobs of %s: %w", id, err)
	}
	n := 0
	for _, j := range jobs {
		out, err := q.deps.Store.UpdateJob(j.ID, func(j *store.JobRecord) error {
			if j.State != store.JobQueued {
				return fmt.Errorf("%w: job %s is %s", store.ErrExists, j.ID[:8], j.State)
			}
			j.State, j.Broker = store.JobCancelled, q.cfg.Name
			j.Result = &store.JobResult{Error: "cancelled: the machine was removed by " + by, Finished: q.cfg.Now().UTC()}
			return nil
		})
		if errors.Is(err, store.ErrExists) {
			continue // it started meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("queue: cancel job %s: %w", j.ID[:8], err)
		}
		n++
		q.deps.Replicated(store.Key{Kind: store.KindJob, ID: out.ID})
		q.deps.Audit.Add(wire.AuditEntry{Event: "job.cancelled", Technician: by, Machine: out.Client + "/" + out.Name,
			Detail: "job " + out.ID[:8] + ": the machine was removed"})
	}
	return n, nil
}
