package queue

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
)

// Add runs OpQueueAdd: one job per machine named or matched.
func (q *Queue) Add(t *wire.Technician, a *wire.QueueArgs) ([]wire.Job, *wire.Error) {
	if !t.Admin && !slices.Contains(t.Modes, a.Mode) {
		return nil, wire.Errorf(wire.CodeForbidden, "technician %s may not run %s work", t.Name, a.Mode)
	}
	ms, werr := q.targets(t, a)
	if werr != nil {
		return nil, werr
	}
	js := q.plan(t, a, ms)
	if err := q.deps.Store.CreateJobs(js); err != nil {
		return nil, serve.StoreError(err)
	}
	out := make([]wire.Job, 0, len(js))
	for i := range js {
		j := &js[i]
		q.deps.Replicated(store.Key{Kind: store.KindJob, ID: j.ID})
		q.deps.Audit.Add(wire.AuditEntry{Event: "job.queued", Technician: t.Name, Machine: j.Client + "/" + j.Name,
			Mode: j.Mode, Detail: "job " + j.ID[:8]})
		j.State = store.JobQueued
		sum := j.Summary()
		sum.Script = "" // the technician has it; 1,000 copies would not fit a reply
		out = append(out, sum)
	}
	q.Kick()
	return out, nil
}

// targets resolves the machines a's names and filters select among those
// t may see.
func (q *Queue) targets(t *wire.Technician, a *wire.QueueArgs) ([]store.Machine, *wire.Error) {
	var ms []store.Machine
	for _, name := range a.Machines {
		m, werr := scope.Find(q.deps.Store, t, name)
		if werr != nil {
			return nil, werr
		}
		ms = append(ms, m)
	}
	if a.Client != "" || a.PendingUpdate != "" || a.Readiness != "" {
		f := wire.MachinesArgs{Client: a.Client, PendingUpdate: a.PendingUpdate, Readiness: a.Readiness}
		if err := readiness.ValidateArgs(&f); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
		}
		for _, c := range q.deps.Fleet.Cards(t, f) {
			if m, ok := q.deps.Store.Machine(c.ID); ok && !slices.ContainsFunc(ms, func(x store.Machine) bool { return x.ID == m.ID }) {
				ms = append(ms, m)
			}
		}
	}
	if len(ms) == 0 {
		return nil, wire.Errorf(wire.CodeNotFound, "no machine you can see matches")
	}
	return ms, nil
}

// plan makes a job for each machine, remembering what the technician
// planned against (check-in, boot, agent version).
func (q *Queue) plan(t *wire.Technician, a *wire.QueueArgs, ms []store.Machine) []store.JobRecord {
	now := q.cfg.Now().UTC()
	js := make([]store.JobRecord, 0, len(ms))
	for _, m := range ms {
		j := store.JobRecord{ID: mesh.NewSessionID(), Machine: m.ID, Client: m.Client, Name: m.Name, Script: a.Script,
			Shell: a.Shell, Mode: a.Mode, RequiresConsent: a.RequiresConsent, Strict: a.Strict, CreatedBy: t.Name, CreatedAt: now,
			Expires: now.Add(time.Duration(a.ExpiresSec) * time.Second), PlannedAgent: m.AgentVersion}
		if m.LastCheckIn != nil {
			j.PlannedSeq, j.PlannedBoot = m.LastCheckIn.Seq, m.LastCheckIn.BootID
		}
		js = append(js, j)
	}
	return js
}

// List runs OpQueueList.
func (q *Queue) List(t *wire.Technician, a *wire.QueueListArgs) ([]wire.Job, *wire.Error) {
	js, err := q.deps.Store.Jobs(func(j *store.JobRecord) bool {
		return scope.Visible(t, j.Client) && (a.Machine == "" || a.Machine == j.Name || a.Machine == j.Client+"/"+j.Name || a.Machine == j.Machine)
	})
	if err != nil {
		return nil, serve.StoreError(err)
	}
	out := []wire.Job{}
	for i := range js {
		s := q.view(&js[i])
		if a.State == "" || s.State == a.State {
			s.Script, s.Output = "", ""
			out = append(out, s)
		}
	}
	return out, nil
}

// view is a job as shown now: a running job whose session waits for the
// person at the machine shows waiting-for-consent.
func (q *Queue) view(j *store.JobRecord) wire.Job {
	s := j.Summary()
	if j.State == store.JobRunning && j.Result != nil && j.Result.Session != "" && q.deps.Sessions.Waiting(j.Machine, j.Result.Session) {
		s.State = "waiting-for-consent"
	}
	return s
}

// find resolves a job ID prefix among the jobs t may see.
func (q *Queue) find(t *wire.Technician, id string) (store.JobRecord, *wire.Error) {
	js, err := q.deps.Store.Jobs(func(j *store.JobRecord) bool { return strings.HasPrefix(j.ID, id) && scope.Visible(t, j.Client) })
	if err != nil {
		return store.JobRecord{}, serve.StoreError(err)
	}
	switch len(js) {
	case 0:
		return store.JobRecord{}, wire.Errorf(wire.CodeNotFound, "no job %s among the jobs you can see", id)
	case 1:
		return js[0], nil
	}
	return store.JobRecord{}, wire.Errorf(wire.CodeConflict, "job %s is ambiguous: give more digits", id)
}

// Show runs OpQueueShow.
func (q *Queue) Show(t *wire.Technician, a *wire.JobArgs) (wire.Job, *wire.Error) {
	j, werr := q.find(t, a.ID)
	if werr != nil {
		return wire.Job{}, werr
	}
	return q.view(&j), nil
}

// Cancel runs OpQueueCancel: only a job still queued is cancelled. A
// rollout's update job is its rollout's to cancel (pause or abort it):
// only an admin cancels one alone.
func (q *Queue) Cancel(t *wire.Technician, a *wire.JobArgs) (wire.Job, *wire.Error) {
	j, werr := q.find(t, a.ID)
	if werr != nil {
		return wire.Job{}, werr
	}
	if u := j.Update; u != nil && u.Rollout != "" && !t.Admin {
		return wire.Job{}, wire.Errorf(wire.CodeForbidden, "this job belongs to rollout %s: pause or abort the rollout", u.Rollout)
	}
	out, err := q.deps.Store.UpdateJob(j.ID, func(j *store.JobRecord) error {
		if j.State != store.JobQueued {
			return fmt.Errorf("%w: job %s is %s, only a queued job can be cancelled", store.ErrExists, j.ID[:8], j.State)
		}
		j.State, j.Broker = store.JobCancelled, q.cfg.Name
		j.Result = &store.JobResult{Error: "cancelled by " + t.Name, Finished: q.cfg.Now().UTC()}
		return nil
	})
	if err != nil {
		return wire.Job{}, wire.Errorf(wire.CodeConflict, "%v", err)
	}
	q.deps.Replicated(store.Key{Kind: store.KindJob, ID: out.ID})
	q.deps.Audit.Add(wire.AuditEntry{Event: "job.cancelled", Technician: t.Name, Machine: out.Client + "/" + out.Name, Detail: "job " + out.ID[:8]})
	return out.Summary(), nil
}
