package queue

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// jobTimeout bounds one delivery: the consent wait and the script's run.
const jobTimeout = 15 * time.Minute

// attempt is one job moved on by this broker.
type attempt struct {
	j       store.JobRecord
	m       store.Machine
	state   string // the job's state once claimed: what a result replaces
	session string // the session it runs in
	warning string // what changed on the machine since the job was planned
	query   bool   // a cancelled job: only ask the agent whether it ran
	// withdrawn: a running update job whose release was withdrawn: only
	// ask the agent whether it took it.
	withdrawn bool
}

// dispatch moves one job on and reports whether the machine's next job
// may go: this one ended, or it is an update job that waits for its
// rollout without having started. j must have been read after its
// machine was claimed here (runMachine does), never taken from an older
// snapshot: a stale copy of a job that ended would be sent again. The
// broker holding the machine's bridge may take over any job still
// running: the agent holds one bridge at a time, so no other broker is
// sending it, and the agent's record answers for a job that already
// started.
func (q *Queue) dispatch(ctx context.Context, j store.JobRecord) bool {
	a := &attempt{j: j, state: j.State, query: j.State == store.JobCancelled}
	if j.State == store.JobQueued && q.cfg.Now().After(j.Expires) {
		q.finish(a, store.JobExpired, store.JobResult{ExitCode: -1, Error: "expired before the machine was reachable"})
		return true
	}
	if !q.ready(a) {
		return false
	}
	if refused := q.checkPlan(a); refused {
		return true
	}
	if j.State == store.JobQueued && j.Update != nil && !q.admit(a) {
		return true
	}
	order, ok := q.order(a)
	if !ok {
		return j.State == store.JobQueued
	}
	if j.Update != nil {
		if !q.takeUpdate() {
			return j.State == store.JobQueued // not started: the machine's next jobs may go
		}
		defer q.dropUpdate()
	}
	sg, ok := q.claim(a)
	if !ok {
		return false
	}
	id, _ := peer.Decode(a.m.ID)
	cctx, cancel := context.WithTimeout(ctx, jobTimeout)
	defer cancel()
	var rep wire.JobReply
	err := bridge.Call(cctx, q.deps.Host, id, wire.ProtoJob, &wire.JobRequest{Grant: sg, Job: j.ID, Script: j.Script, Shell: j.Shell,
		RequiresConsent: j.RequiresConsent, Expires: j.Expires, QueryOnly: a.query || a.withdrawn, Update: order},
		&rep, wire.MaxControl+6*store.MaxJobOutput)
	return q.record(a, &rep, err)
}

// ready reports whether the machine can be judged by what it says now:
// it has checked in since its current bridge opened.
func (q *Queue) ready(a *attempt) bool {
	m, ok := q.deps.Store.Machine(a.j.Machine)
	if !ok {
		return false
	}
	a.m = m
	since, ok := q.deps.Reach.Since(m.ID)
	return ok && m.LastCheckIn != nil && !m.LastCheckIn.At.Before(since)
}

// checkPlan notes what changed on the machine since a queued job was
// planned, and refuses a --strict job for it (reporting true).
func (q *Queue) checkPlan(a *attempt) (refused bool) {
	j, m := &a.j, &a.m
	rebooted := m.LastCheckIn.BootID != j.PlannedBoot && j.PlannedBoot != ""
	upgraded := m.AgentVersion != j.PlannedAgent && j.PlannedAgent != ""
	if j.State != store.JobQueued || !rebooted && !upgraded {
		if j.Result != nil {
			a.warning = j.Result.Warning
		}
		return false
	}
	var what []string
	if m.LastCheckIn.BootID != j.PlannedBoot {
		what = append(what, "it rebooted")
	}
	if m.AgentVersion != j.PlannedAgent {
		what = append(what, fmt.Sprintf("its agent went from %s to %s", j.PlannedAgent, m.AgentVersion))
	}
	a.warning = fmt.Sprintf("since this job was planned (check-in %d) %s", j.PlannedSeq, strings.Join(what, " and "))
	if !j.Strict {
		return false
	}
	q.finish(a, store.JobFailed, store.JobResult{ExitCode: -1, Warning: a.warning, Error: "refused (--strict): " + a.warning})
	return true
}

// claim signs the grant the job runs under and, for a queued job, marks
// it running on this broker with that session (replicated) before it is
// sent: the claim that keeps a job from running twice.
func (q *Queue) claim(a *attempt) (wire.SignedGrant, bool) {
	j := &a.j
	sg, g, err := mesh.IssueGrant(q.deps.Key, wire.Grant{Technician: q.cfg.ID, Machine: a.m.ID, Mode: j.Mode,
		TechnicianName: "queue (" + j.CreatedBy + ")"}, q.cfg.Now(), time.Hour)
	if err != nil {
		return sg, false
	}
	a.session = g.Session
	if j.State != store.JobQueued {
		return sg, true
	}
	if _, err := q.deps.Store.UpdateJob(j.ID, func(x *store.JobRecord) error {
		if x.State != store.JobQueued {
			return fmt.Errorf("job is %s", x.State)
		}
		x.State, x.Broker = store.JobRunning, q.cfg.Name
		x.Result = &store.JobResult{Session: g.Session, Warning: a.warning}
		return nil
	}); err != nil {
		return sg, false
	}
	q.deps.Replicated(store.Key{Kind: store.KindJob, ID: j.ID})
	a.state = store.JobRunning
	return sg, true
}

// record stores what the agent answered and reports whether the job has
// ended.
func (q *Queue) record(a *attempt, rep *wire.JobReply, err error) bool {
	j := &a.j
	switch {
	case err != nil:
		// Not delivered, or the answer lost: the agent's record decides
		// on the next try.
		q.cfg.Logger.Info("job not finished; will ask again", "job", j.ID, "err", err)
		return false
	case rep.Error != nil && rep.Error.Code == wire.CodeUnavailable:
		q.cfg.Logger.Info("job still running on the machine; will ask again", "job", j.ID)
		return false
	case rep.Error != nil && a.withdrawn && rep.Error.Code == wire.CodeNotFound:
		q.finish(a, store.JobFailed, store.JobResult{ExitCode: -1, Session: a.session, Warning: a.warning,
			Error: "release " + j.Update.Version + " was withdrawn before the agent took it"})
	case rep.Error != nil && a.query && rep.Error.Code == wire.CodeNotFound:
		q.standCancelled(j)
	case rep.Error != nil && strings.Contains(rep.Error.Message, "expired while it waited"):
		q.finish(a, store.JobExpired, store.JobResult{ExitCode: -1, Warning: a.warning, Error: rep.Error.Message})
	case rep.Error != nil:
		q.finish(a, store.JobFailed, store.JobResult{ExitCode: -1, Session: a.session, Warning: a.warning, Error: rep.Error.Message})
	case rep.ExitCode != 0:
		q.finish(a, store.JobFailed, store.JobResult{ExitCode: rep.ExitCode, Output: rep.Output, Session: a.session, Warning: a.warning})
	default:
		q.finish(a, store.JobDone, store.JobResult{ExitCode: rep.ExitCode, Output: rep.Output, Session: a.session, Warning: a.warning})
	}
	return true
}

// standCancelled closes a cancellation that raced a start: the agent never
// ran the job, so the cancellation stands.
func (q *Queue) standCancelled(j *store.JobRecord) {
	if _, err := q.deps.Store.UpdateJob(j.ID, func(x *store.JobRecord) error {
		if !cancelledAfterStart(x) {
			return fmt.Errorf("job is %s now, no longer waiting for the agent's word", x.State)
		}
		x.Result.Finished = q.cfg.Now().UTC()
		return nil
	}); err != nil {
		q.cfg.Logger.Info("cancellation not closed", "job", j.ID, "err", err)
		return
	}
	q.deps.Replicated(store.Key{Kind: store.KindJob, ID: j.ID})
}

// finish stores how the job ended, only from the state it was read in: a
// newer record (a result from another broker) is never overwritten.
func (q *Queue) finish(a *attempt, state string, r store.JobResult) {
	j := &a.j
	r.Finished = q.cfg.Now().UTC()
	out, err := q.deps.Store.UpdateJob(j.ID, func(x *store.JobRecord) error {
		if x.State != a.state {
			return fmt.Errorf("job is %s now, not %s", x.State, a.state)
		}
		if r.Session == "" && x.Result != nil {
			r.Session = x.Result.Session
		}
		x.State, x.Broker, x.Result = state, q.cfg.Name, &r
		return nil
	})
	if err != nil {
		q.cfg.Logger.Info("job result not stored", "job", j.ID, "err", err)
		return
	}
	q.deps.Replicated(store.Key{Kind: store.KindJob, ID: j.ID})
	q.deps.Audit.Add(wire.AuditEntry{Event: "job." + state, Technician: out.CreatedBy, Machine: out.Client + "/" + out.Name,
		Mode: out.Mode, Session: r.Session, Detail: fmt.Sprintf("job %s exit %d %s", j.ID[:8], r.ExitCode, r.Error)})
	q.cfg.Logger.Info("job "+state, "job", j.ID, "machine", out.Client+"/"+out.Name, "exit", r.ExitCode)
}
