package session

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// Request is one session request.
type Request struct {
	Tech   *wire.Technician
	TechID peer.ID
	Args   *wire.SessionArgs
	// Console marks a request from the web console, so audited.
	Console bool
	// Check validates Args. For a web-console session it returns the
	// browser's DTLS fingerprints, which the grant binds.
	Check func() ([]string, *wire.Error)
}

// Open runs OpSessionOpen for technician t with the request's raw
// arguments.
func (s *Service) Open(ctx context.Context, t *wire.Technician, techID peer.ID, raw json.RawMessage) (wire.SessionResult, *wire.Error) {
	var a wire.SessionArgs
	// Read leniently first: what the request holds is audited even when
	// it is refused as invalid.
	json.Unmarshal(raw, &a)
	check := func() ([]string, *wire.Error) { return nil, serve.Args(wire.OpSessionOpen, raw, &a) }
	return s.Request(ctx, Request{Tech: t, TechID: techID, Args: &a, Check: check})
}

// Request authorises r, signs a grant, carries the offer to the agent and
// returns its answer, or a redirect to the broker holding the machine's
// bridge. ctx ends when the technician goes away: a request withdrawn
// while the agent asks for consent is not granted.
//
// Every request goes into the audit log with its outcome, granted (after
// the agent accepted, and after consent where the policy asks for it) or
// refused, by the broker or by the agent; a redirected one is recorded by
// the broker it names.
func (s *Service) Request(ctx context.Context, r Request) (wire.SessionResult, *wire.Error) {
	if !s.rate.Allow(string(r.TechID), s.cfg.Now()) {
		// Counted, not audited: a flood must not push real entries out.
		s.deps.Refused("tech:"+wire.OpSessionOpen, "rate")
		return wire.SessionResult{}, wire.Errorf(wire.CodeUnavailable, "too many session requests from this technician; wait a moment")
	}
	// Machine is filled in once resolved among the machines the
	// technician may see, so nobody can plant entries in another
	// client's view.
	ev := wire.AuditEntry{At: s.cfg.Now().UTC(), Technician: r.Tech.Name, Mode: r.Args.Mode, Transport: r.Args.Transport}
	if r.Console {
		ev.Detail = "web console"
	}
	var res wire.SessionResult
	fingerprints, werr := r.Check()
	if werr == nil {
		res, werr = s.open(ctx, &r, fingerprints, &ev)
	}
	switch {
	case werr != nil:
		ev.Event, ev.Detail = wire.AuditRefused, strings.TrimPrefix(ev.Detail+": "+werr.Message, ": ")
	case res.Redirect != nil:
		return res, nil
	default:
		ev.Event = wire.AuditGranted
	}
	s.deps.Audit.Add(ev)
	return res, werr
}

// open runs a checked request's phases: authorise, find the machine here,
// wait for its first check-in, offer, deliver.
func (s *Service) open(ctx context.Context, r *Request, fingerprints []string, ev *wire.AuditEntry) (wire.SessionResult, *wire.Error) {
	m, machine, werr := s.authorize(r, ev)
	if werr != nil {
		return wire.SessionResult{}, werr
	}
	if redirect, werr := s.here(&m); redirect != nil || werr != nil {
		return wire.SessionResult{Redirect: redirect}, werr
	}
	if m, werr = s.checkedIn(m); werr != nil {
		return wire.SessionResult{}, werr
	}
	o, g, werr := s.offer(r, &m, machine, fingerprints)
	if werr != nil {
		return wire.SessionResult{}, werr
	}
	return s.deliver(ctx, r, &m, machine, o, g, ev)
}

// authorize finds the machine among those r's technician may see and
// checks the technician may open sessions in the mode asked.
func (s *Service) authorize(r *Request, ev *wire.AuditEntry) (store.Machine, peer.ID, *wire.Error) {
	t, a := r.Tech, r.Args
	m, werr := scope.Find(s.deps.Store, t, a.Machine)
	if werr != nil {
		return m, "", werr
	}
	ev.Machine = m.Client + "/" + m.Name
	if !t.Admin && !slices.Contains(t.Modes, a.Mode) {
		return m, "", wire.Errorf(wire.CodeForbidden, "technician %s may not open %s sessions (allowed: %s)",
			t.Name, a.Mode, strings.Join(t.Modes, ", "))
	}
	machine, err := peer.Decode(m.ID)
	if err != nil {
		return m, "", wire.Errorf(wire.CodeInternal, "machine ID %q: %v", m.ID, err)
	}
	return m, machine, nil
}

// here checks that m is bridged to this broker, or returns where it is:
// the offer, the relay and the agent's bridge must be on one broker.
func (s *Service) here(m *store.Machine) (*wire.BrokerInfo, *wire.Error) {
	if s.deps.Reach.Online(m.ID) {
		return nil, nil
	}
	if broker, ok := s.deps.Reach.Elsewhere(m.ID); ok {
		if info, ok := s.deps.Brokers.Describe(broker); ok {
			return &info, nil
		}
		return nil, wire.Errorf(wire.CodeUnavailable, "%s/%s is connected to broker %s, which this broker cannot describe", m.Client, m.Name, broker)
	}
	seen := "never"
	if m.LastSeen != nil {
		seen = m.LastSeen.UTC().Format(time.RFC3339)
	}
	return nil, wire.Errorf(wire.CodeUnavailable, "%s/%s is not reachable now (last seen %s); its stored state stays readable with meshctl show",
		m.Client, m.Name, seen)
}

// checkedIn returns m once it has checked in: a machine that just
// connected for the first time checks in at once, so it gets a moment
// (5 s) rather than a refusal.
func (s *Service) checkedIn(m store.Machine) (store.Machine, *wire.Error) {
	for i := 0; m.LastCheckIn == nil && i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		if cur, ok := s.deps.Store.Machine(m.ID); ok {
			m = cur
		}
	}
	if m.LastCheckIn == nil {
		return m, wire.Errorf(wire.CodeConflict, "%s/%s has never checked in: nothing is known about it yet", m.Client, m.Name)
	}
	return m, nil
}

// offer signs the grant, offers a relay slot when the transport may use
// one, and builds the offer the agent gets.
func (s *Service) offer(r *Request, m *store.Machine, machine peer.ID, fingerprints []string) (*wire.Offer, wire.Grant, *wire.Error) {
	a := r.Args
	sg, g, err := mesh.IssueGrant(s.deps.Key, wire.Grant{Technician: r.TechID.String(), Machine: m.ID, Mode: a.Mode,
		TechnicianName: r.Tech.Name, Fingerprints: fingerprints}, s.cfg.Now(), s.cfg.GrantTTL)
	if err != nil {
		return nil, g, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	relay := a.Transport == wire.TransportAuto || a.Transport == wire.TransportRelay
	if relay {
		if werr := s.deps.Relay.Expect(g.Session, r.TechID, machine, g.Expires.Add(s.cfg.GrantTTL)); werr != nil {
			if a.Transport == wire.TransportRelay {
				return nil, g, werr
			}
			relay = false
		}
	}
	o := &wire.Offer{Grant: sg, Transport: a.Transport, Params: a.Params, ParamsSig: a.Sig, Relay: relay,
		STUNPort: s.STUNPort()}
	if a.Transport == wire.TransportWebRTC {
		o.TURNUser, o.TURNPassword = s.TURNCredentials(m.ID)
	}
	if rtt := s.deps.Host.Peerstore().LatencyEWMA(r.TechID); rtt > 0 {
		o.PunchDelayMs = int(rtt / 2 / time.Millisecond)
	}
	return o, g, nil
}

// deliverTimeout bounds the agent's answer: at once, or after the person
// at the machine approves (the agent's consent timeout is 2 minutes by
// default).
const deliverTimeout = 3 * time.Minute

// deliver carries the offer to the agent and returns its answer.
func (s *Service) deliver(ctx context.Context, r *Request, m *store.Machine, machine peer.ID, o *wire.Offer, g wire.Grant, ev *wire.AuditEntry) (wire.SessionResult, *wire.Error) {
	ctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	defer cancel()
	if obs, ok := s.observe(ctx, r.Args.StunToken); ok {
		o.Observed = obs
	}
	name := m.Client + "/" + m.Name
	var ans wire.Answer
	if err := bridge.Call(ctx, s.deps.Host, machine, wire.ProtoSession, o, &ans, wire.MaxControl); err != nil {
		s.deps.Relay.Forget(g.Session)
		return wire.SessionResult{}, wire.Errorf(wire.CodeUnavailable, "could not reach %s: %v", name, err)
	}
	ev.Session = g.Session
	if ans.Error != nil {
		s.deps.Relay.Forget(g.Session)
		s.cfg.Logger.Warn("agent refused a session", "machine", name, "technician", r.Tech.Name, "code", ans.Error.Code, "reason", ans.Error.Message)
		return wire.SessionResult{}, ans.Error
	}
	s.grants.add(g.Session, m.ID)
	s.granted.WithLabelValues(r.Args.Transport).Inc()
	s.cfg.Logger.Info("session granted", "session", g.Session, "machine", name, "technician", r.Tech.Name,
		"mode", r.Args.Mode, "transport", r.Args.Transport, "relay", o.Relay, "expires", g.Expires)
	return wire.SessionResult{Grant: o.Grant, Session: g.Session, Machine: m.ID, Name: name,
		Answer: ans.Params, AnswerSig: ans.ParamsSig, Relay: o.Relay, RelayName: s.cfg.Name, STUNPort: s.STUNPort()}, nil
}
