package sessiond

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// Consent errors, as the technician reads them.
var (
	ErrConsentDenied  = errors.New("the person at the machine denied the session")
	ErrConsentTimeout = errors.New("nobody at the machine answered the consent request")
)

// consent is the agent's consent posture: the policy (never, window,
// session), the last approval, and the requests waiting for the person at
// the machine. The agent is the source of truth; the broker learns it
// from session status (waiting requests) and check-ins (policy, approval).
type consent struct {
	// mu guards all following fields. It is never held while waiting for
	// an answer or writing to the local database.
	mu       sync.Mutex
	policy   string
	window   time.Duration
	approval localdb.Approval
	known    bool // policy or approval set here, not only from the flag
	requests map[string]*consentRequest
}

type consentRequest struct {
	info   wire.ConsentRequest
	answer chan bool
}

// loadConsent reads the stored posture; the --consent flag is the default
// until a technician with admin rights sets a policy.
func (a *Agent) loadConsent() error {
	a.consent = &consent{policy: a.cfg.ConsentPolicy, window: a.cfg.ConsentWindow, requests: map[string]*consentRequest{}}
	st, ok, err := a.db.Consent()
	if err != nil {
		return err
	}
	if ok {
		a.consent.known = true
		if st.Policy != "" {
			a.consent.policy, a.consent.window = st.Policy, time.Duration(st.WindowSec)*time.Second
		}
		a.consent.approval = st.Approval
	}
	return nil
}

// askConsent blocks until the session may go ahead under the policy: at
// once for never, or within a valid approval window; otherwise it waits for
// the person at the machine (sessiond approve or deny) up to
// Config.ConsentTimeout.
func (a *Agent) askConsent(ctx context.Context, g wire.Grant) error {
	return a.askConsentFor(ctx, g, false)
}

// askConsentFor is askConsent; always asks the person at the machine
// whatever the policy (a queued job that requires consent).
func (a *Agent) askConsentFor(ctx context.Context, g wire.Grant, always bool) error {
	c := a.consent
	now := a.cfg.Now()
	c.mu.Lock()
	policy := c.policy
	if always {
		policy = wire.ConsentSession
	}
	if policy == wire.ConsentNever || policy == "" ||
		(policy == wire.ConsentWindow && c.approval.ExpiresAt != nil && now.Before(*c.approval.ExpiresAt) &&
			modeRank(g.Mode) <= modeRank(c.approval.Mode)) {
		c.mu.Unlock()
		return nil
	}
	req := &consentRequest{answer: make(chan bool), info: wire.ConsentRequest{ID: g.Session[:8], Session: g.Session,
		Technician: g.TechnicianName, Mode: g.Mode, Asked: now.UTC(), Policy: policy}}
	c.requests[req.info.ID] = req
	c.mu.Unlock()
	a.log.Warn("a technician asks for a session: approve with `sessiond approve`, refuse with `sessiond deny`",
		"request", req.info.ID, "technician", g.TechnicianName, "mode", g.Mode)
	a.kickStatus()
	defer func() {
		c.mu.Lock()
		delete(c.requests, req.info.ID)
		c.mu.Unlock()
		a.kickStatus()
	}()
	t := time.NewTimer(a.cfg.ConsentTimeout)
	defer t.Stop()
	select {
	case ok := <-req.answer:
		if !ok {
			a.log.Warn("session denied at the machine", "request", req.info.ID, "technician", g.TechnicianName)
			return fmt.Errorf("%w (request %s)", ErrConsentDenied, req.info.ID)
		}
		a.log.Info("session approved at the machine", "request", req.info.ID, "technician", g.TechnicianName)
		return nil
	case <-t.C:
		a.log.Warn("consent request timed out", "request", req.info.ID, "technician", g.TechnicianName, "after", a.cfg.ConsentTimeout)
		return fmt.Errorf("%w within %s (request %s)", ErrConsentTimeout, a.cfg.ConsentTimeout, req.info.ID)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// answer approves or denies waiting requests: id, or all with id "".
// An approval under the window policy is recorded with its expiry.
func (a *Agent) answer(id string, ok bool) ([]wire.ConsentRequest, error) {
	c := a.consent
	c.mu.Lock()
	done, top := c.deliverLocked(id, ok)
	if ok && len(done) > 0 {
		c.approveLocked(top, a.cfg.Now().UTC())
	}
	st := c.stateLocked()
	c.mu.Unlock()
	if len(done) == 0 {
		if id == "" {
			return nil, errors.New("no requests are waiting")
		}
		return nil, fmt.Errorf("no waiting request %q (see sessiond requests)", id)
	}
	if ok {
		if err := a.db.SetConsent(st); err != nil {
			return done, err
		}
		go a.requestCheckIn(context.Background()) // readiness shows the approval
	}
	return done, nil
}

// deliverLocked gives the answer to the waiting requests it is for (id,
// or all with id "") and returns them, with the highest mode among them.
// c.mu must be held.
func (c *consent) deliverLocked(id string, ok bool) (done []wire.ConsentRequest, top string) {
	for rid, r := range c.requests {
		if id != "" && rid != id {
			continue
		}
		// Delivered only to a request still waiting: one that just timed
		// out is not approved after the fact.
		select {
		case r.answer <- ok:
			done = append(done, r.info)
			if modeRank(r.info.Mode) > modeRank(top) {
				top = r.info.Mode
			}
		default:
		}
	}
	return done, top
}

// approveLocked records an approval given now for sessions up to mode
// top, with its expiry under the window policy. c.mu must be held.
func (c *consent) approveLocked(top string, now time.Time) {
	who := "the person at the machine"
	if u, err := user.Current(); err == nil {
		who = u.Username + " at the machine"
	}
	// A window covers sessions up to the mode approved: approving a
	// read-only session does not let elevated ones through.
	c.approval = localdb.Approval{LastApprovedAt: &now, ApprovedBy: who, Mode: top}
	if c.policy == wire.ConsentWindow {
		exp := now.Add(c.window)
		c.approval.ExpiresAt = &exp
	}
	c.known = true
}

// stateLocked is the posture as the local database keeps it. c.mu must be
// held.
func (c *consent) stateLocked() localdb.ConsentState {
	return localdb.ConsentState{Policy: c.policy, WindowSec: int64(c.window / time.Second), Approval: c.approval}
}

// waiting lists the requests waiting for an answer, oldest first.
func (a *Agent) waiting() []wire.ConsentRequest {
	c := a.consent
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]wire.ConsentRequest, 0, len(c.requests))
	for _, r := range c.requests {
		out = append(out, r.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Asked.Before(out[j].Asked) })
	return out
}

// applyConsent puts the agent's consent posture into a snapshot, once it
// is the agent's own (set by a technician or approved here).
func (a *Agent) applyConsent(s *wire.Snapshot) {
	c := a.consent
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.known {
		return
	}
	s.Runtime.ConsentPolicy = c.policy
	s.Approval = wire.Approval{Required: c.policy != wire.ConsentNever, LastApprovedAt: c.approval.LastApprovedAt,
		ExpiresAt: c.approval.ExpiresAt, ApprovedBy: c.approval.ApprovedBy}
}

// handlePolicy takes a consent policy a technician with admin rights set
// through a broker this agent trusts.
func (a *Agent) handlePolicy(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if !a.trustedBroker(s.Conn().RemotePeer()) {
		wire.Write(s, &wire.Reply{Error: &wire.Error{Code: wire.CodeForbidden, Message: "only this agent's brokers may set its policy"}})
		return
	}
	var p wire.ConsentPolicyArgs
	if err := wire.NewReader(s).Read(wire.MaxControl, &p); err != nil {
		wire.Write(s, &wire.Reply{Error: &wire.Error{Code: wire.CodeBadRequest, Message: err.Error()}})
		return
	}
	c := a.consent
	c.mu.Lock()
	c.policy, c.known = p.Policy, true
	if p.WindowSec > 0 {
		c.window = time.Duration(p.WindowSec) * time.Second
	}
	st := c.stateLocked()
	c.mu.Unlock()
	if err := a.db.SetConsent(st); err != nil {
		wire.Write(s, &wire.Reply{Error: &wire.Error{Code: wire.CodeInternal, Message: err.Error()}})
		return
	}
	a.log.Info("consent policy set by a technician", "policy", p.Policy, "window", time.Duration(st.WindowSec)*time.Second, "by", p.By)
	wire.Write(s, &wire.Reply{})
	go a.requestCheckIn(context.Background())
}

// modeRank orders modes by the rights they give.
func modeRank(mode string) int {
	switch mode {
	case wire.ModeReadOnly:
		return 1
	case wire.ModeInteractive:
		return 2
	case wire.ModeElevated:
		return 3
	}
	return 0
}
