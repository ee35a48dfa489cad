package sessiond

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
	"github.com/readymesh/readymesh/sessiond/update"
)

// handleJob runs a queued job a broker this agent trusts sends, under the
// grant that broker issued to itself: consent as the policy (or the job)
// asks, then once and only once, by the job ID recorded in the local
// database before the script starts. An update job (see update.go) that
// staged its release hands over once its reply is delivered.
func (a *Agent) handleJob(s network.Stream) {
	defer s.Close()
	from := s.Conn().RemotePeer()
	s.SetDeadline(time.Now().Add(a.cfg.ConsentTimeout + 15*time.Minute))
	rep, staged := a.answerJob(s, from)
	if rep.Error != nil {
		a.log.Warn("refused a queued job", "from", from, "reason", rep.Error.Message)
	}
	wire.Write(s, &rep)
	if staged != nil {
		replyDelivered(s)
		a.handOver(staged)
	}
}

// answerJob takes a job through its phases: who sent it, what this agent
// already knows of it, consent, a durable claim, and the run. An update
// job that staged its release returns the trial to hand over to.
func (a *Agent) answerJob(s network.Stream, from peer.ID) (wire.JobReply, *update.Trial) {
	req, g, refusal := a.readJob(s, from)
	if refusal != nil {
		return wire.JobReply{Error: refusal}, nil
	}
	if rep, known := a.priorRun(req); known {
		return rep, nil
	}
	if req.Update != nil && g.Mode != wire.ModeElevated {
		return wire.JobReply{Error: &wire.Error{Code: wire.CodeForbidden,
			Message: "an update job needs an elevated grant, not " + g.Mode}}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ConsentTimeout+15*time.Minute)
	defer cancel()
	if refusal := a.jobConsent(ctx, g, req); refusal != nil {
		return wire.JobReply{Error: refusal}, nil
	}
	started, release, refusal := a.claimJob(req.Job)
	if refusal != nil {
		return wire.JobReply{Error: refusal}, nil
	}
	defer release()
	if req.Update != nil {
		return a.runUpdate(ctx, req, started)
	}
	return a.runJob(ctx, req, g, started), nil
}

// readJob reads a job request and checks its sender: a broker this agent
// trusts, with a valid grant that broker issued to itself.
func (a *Agent) readJob(s network.Stream, from peer.ID) (wire.JobRequest, wire.Grant, *wire.Error) {
	var req wire.JobRequest
	if !a.trustedBroker(from) {
		return req, wire.Grant{}, &wire.Error{Code: wire.CodeForbidden, Message: "only this agent's brokers may send queued work"}
	}
	if err := wire.NewReader(s).Read(wire.MaxControl+64<<10, &req); err != nil {
		return req, wire.Grant{}, &wire.Error{Code: wire.CodeBadRequest, Message: err.Error()}
	}
	g, err := mesh.VerifyGrant(req.Grant, a.key.ID, a.trustedBroker, a.cfg.Now())
	switch {
	case err != nil:
		return req, g, &wire.Error{Code: offerCode(err), Message: err.Error()}
	case g.Issuer != from.String() || g.Technician != g.Issuer:
		return req, g, &wire.Error{Code: wire.CodeForbidden,
			Message: "a queued job's grant must be issued by the broker that sends it, to itself"}
	}
	return req, g, nil
}

// priorRun answers from what this agent already knows of the job, which
// comes first: a job that started never asks for consent again and never
// runs again. known is false for a job new here.
func (a *Agent) priorRun(req wire.JobRequest) (rep wire.JobReply, known bool) {
	refuse := func(code, msg string) (wire.JobReply, bool) {
		return wire.JobReply{Error: &wire.Error{Code: code, Message: msg}}, true
	}
	if a.jobs.has(req.Job) {
		return refuse(wire.CodeUnavailable, "job "+req.Job[:8]+" is still running")
	}
	prev, seen, err := a.db.JobRecord(req.Job)
	switch {
	case err != nil:
		return refuse(wire.CodeInternal, err.Error())
	case seen && prev.Finished != nil:
		a.log.Info("queued job asked again; answering with its recorded result", "job", req.Job)
		return wire.JobReply{ExitCode: prev.ExitCode, Output: prev.Output, Replayed: true}, true
	case seen:
		return refuse(wire.CodeGone, fmt.Sprintf("job %s started at %s and its result was lost (the agent stopped); it is not run again",
			req.Job[:8], prev.Started.Format(time.RFC3339)))
	case req.QueryOnly:
		return refuse(wire.CodeNotFound, "job "+req.Job[:8]+" never started here")
	}
	return wire.JobReply{}, false
}

// jobConsent asks for consent as the policy or the job requires, and
// refuses a job that expired while it waited.
func (a *Agent) jobConsent(ctx context.Context, g wire.Grant, req wire.JobRequest) *wire.Error {
	if err := a.askConsentFor(ctx, g, req.RequiresConsent); err != nil {
		return &wire.Error{Code: offerCode(err), Message: err.Error()}
	}
	if !req.Expires.IsZero() && a.cfg.Now().After(req.Expires) {
		return &wire.Error{Code: wire.CodeGone, Message: "the job expired while it waited for consent"}
	}
	return nil
}

// claimJob marks the job running, in memory and then durably, so a
// concurrent or repeated ask never runs it twice. It returns when the
// job started and release, which forgets the in-memory mark once the job
// is done.
func (a *Agent) claimJob(job string) (started time.Time, release func(), refusal *wire.Error) {
	if !a.jobs.add(job) {
		return time.Time{}, nil, &wire.Error{Code: wire.CodeUnavailable, Message: "job " + job[:8] + " is still running"}
	}
	release = func() { a.jobs.remove(job) }
	prev, first, err := a.db.StartJob(job, a.cfg.Now())
	switch {
	case err != nil:
		release()
		return time.Time{}, nil, &wire.Error{Code: wire.CodeInternal, Message: err.Error()}
	case !first: // a concurrent ask started it between the checks
		release()
		return time.Time{}, nil, &wire.Error{Code: wire.CodeUnavailable, Message: "job " + job[:8] + " is already running"}
	}
	return prev.Started, release, nil
}

// runJob runs the job's script and records how it ended before the reply
// goes out.
func (a *Agent) runJob(ctx context.Context, req wire.JobRequest, g wire.Grant, started time.Time) wire.JobReply {
	code, out, err := a.channels.RunScript(ctx, g.Mode, req.Script, req.Shell, g.Session, req.Job[:8])
	done := a.cfg.Now().UTC()
	if err != nil {
		a.db.FinishJob(req.Job, localdb.JobRun{Started: started, Finished: &done, ExitCode: -1, Output: err.Error()})
		return wire.JobReply{Error: &wire.Error{Code: wire.CodeForbidden, Message: err.Error()}}
	}
	if err := a.db.FinishJob(req.Job, localdb.JobRun{Started: started, Finished: &done, ExitCode: code, Output: out}); err != nil {
		a.log.Warn("job result not recorded", "job", req.Job, "err", err)
	}
	return wire.JobReply{ExitCode: code, Output: out}
}

// runningJobs is the set of queued jobs running on this agent now.
type runningJobs struct {
	mu  sync.Mutex // mu guards ids
	ids map[string]bool
}

// has reports whether job is running.
func (r *runningJobs) has(job string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ids[job]
}

// add marks job running; it reports false if it already was.
func (r *runningJobs) add(job string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids[job] {
		return false
	}
	if r.ids == nil {
		r.ids = map[string]bool{}
	}
	r.ids[job] = true
	return true
}

// remove forgets job.
func (r *runningJobs) remove(job string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.ids, job)
}
