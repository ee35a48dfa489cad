package sessiond

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// handleJob runs a queued job a broker this agent trusts sends, under the
// grant that broker issued to itself: consent as the policy (or the job)
// asks, then once and only once, by the job ID recorded in the local
// database
// before the script starts.
func (a *Agent) handleJob(s network.Stream) {
	defer s.Close()
	from := s.Conn().RemotePeer()
	s.SetDeadline(time.Now().Add(a.cfg.ConsentTimeout + 15*time.Minute))
	reply := func(r wire.JobReply) { wire.Write(s, &r) }
	refuse := func(code, msg string) {
		a.log.Warn("refused a queued job", "from", from, "reason", msg)
		reply(wire.JobReply{Error: &wire.Error{Code: code, Message: msg}})
	}
	if !a.trustedBroker(from) {
		refuse(wire.CodeForbidden, "only this agent's brokers may send queued work")
		return
	}
	var req wire.JobRequest
	if err := wire.NewReader(s).Read(wire.MaxControl+64<<10, &req); err != nil {
		refuse(wire.CodeBadRequest, err.Error())
		return
	}
	g, err := mesh.VerifyGrant(req.Grant, a.key.ID, a.trustedBroker, a.cfg.Now())
	switch {
	case err != nil:
		refuse(offerCode(err), err.Error())
		return
	case g.Issuer != from.String() || g.Technician != g.Issuer:
		refuse(wire.CodeForbidden, "a queued job's grant must be issued by the broker that sends it, to itself")
		return
	}
	// What this agent already knows of the job comes first: a job that
	// started never asks for consent again and never runs again.
	a.jobsMu.Lock()
	if a.jobsRunning == nil {
		a.jobsRunning = map[string]bool{}
	}
	running := a.jobsRunning[req.Job]
	a.jobsMu.Unlock()
	if running {
		refuse(wire.CodeUnavailable, "job "+req.Job[:8]+" is still running")
		return
	}
	prev, seen, err := a.db.JobRecord(req.Job)
	switch {
	case err != nil:
		refuse(wire.CodeInternal, err.Error())
		return
	case seen && prev.Finished != nil:
		a.log.Info("queued job asked again; answering with its recorded result", "job", req.Job)
		reply(wire.JobReply{ExitCode: prev.ExitCode, Output: prev.Output, Replayed: true})
		return
	case seen:
		refuse(wire.CodeGone, fmt.Sprintf("job %s started at %s and its result was lost (the agent stopped); it is not run again",
			req.Job[:8], prev.Started.Format(time.RFC3339)))
		return
	case req.QueryOnly:
		refuse(wire.CodeNotFound, "job "+req.Job[:8]+" never started here")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ConsentTimeout+15*time.Minute)
	defer cancel()
	if err := a.askConsentFor(ctx, g, req.RequiresConsent); err != nil {
		refuse(offerCode(err), err.Error())
		return
	}
	if !req.Expires.IsZero() && a.cfg.Now().After(req.Expires) {
		refuse(wire.CodeGone, "the job expired while it waited for consent")
		return
	}
	a.jobsMu.Lock()
	if a.jobsRunning[req.Job] {
		a.jobsMu.Unlock()
		refuse(wire.CodeUnavailable, "job "+req.Job[:8]+" is still running")
		return
	}
	a.jobsRunning[req.Job] = true
	a.jobsMu.Unlock()
	defer func() {
		a.jobsMu.Lock()
		delete(a.jobsRunning, req.Job)
		a.jobsMu.Unlock()
	}()
	prev, first, err := a.db.StartJob(req.Job, a.cfg.Now())
	if err != nil {
		refuse(wire.CodeInternal, err.Error())
		return
	}
	if !first { // a concurrent ask started it between the checks
		refuse(wire.CodeUnavailable, "job "+req.Job[:8]+" is already running")
		return
	}
	code, out, err := a.channels.RunScript(ctx, g.Mode, req.Script, g.Session, req.Job[:8])
	if err != nil {
		done := a.cfg.Now().UTC()
		a.db.FinishJob(req.Job, localdb.JobRun{Started: prev.Started, Finished: &done, ExitCode: -1, Output: err.Error()})
		refuse(wire.CodeForbidden, err.Error())
		return
	}
	done := a.cfg.Now().UTC()
	if err := a.db.FinishJob(req.Job, localdb.JobRun{Started: prev.Started, Finished: &done, ExitCode: code, Output: out}); err != nil {
		a.log.Warn("job result not recorded", "job", req.Job, "err", err)
	}
	reply(wire.JobReply{ExitCode: code, Output: out})
}
