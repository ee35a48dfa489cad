package session

import (
	"slices"
	"sync"
	"time"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/peer/wire"
)

// waitingForApproval is the state of a session request that waits for the
// person at the machine.
const waitingForApproval = "waiting-for-approval"

// Status is the session-status table: for each machine bridged to this
// broker, the sessions its agent last reported and the signals of its last
// heartbeat. The reachability layer feeds it heartbeats (Beat) and tells it
// when a presence stream is replaced or closed (Gone).
type Status struct {
	busyLoad float64
	onChange func()

	mu       sync.RWMutex
	machines map[string]*machineStatus // mu guards; machine ID → what it reported
}

// machineStatus is what one agent reported.
type machineStatus struct {
	sessions    []wire.SessionInfo // as the agent last reported them
	beat        bool               // a heartbeat has arrived: load and userPresent hold
	load1       float64
	userPresent bool
}

// NewStatus returns an empty table. busyLoad is the load per core at or
// above which a machine shows busy; zero means 0.9. onChange, if not nil,
// is called when what the console shows of session status changes.
func NewStatus(busyLoad float64, onChange func()) *Status {
	if busyLoad <= 0 {
		busyLoad = 0.9
	}
	return &Status{busyLoad: busyLoad, onChange: onChange, machines: map[string]*machineStatus{}}
}

// Beat records the signals of machine id's heartbeat. A person logging in
// or out is a change the console shows; load alone is not.
func (st *Status) Beat(id string, hb *wire.Heartbeat) {
	st.mu.Lock()
	m := st.machineLocked(id)
	changed := m.userPresent != hb.UserPresent
	m.beat, m.load1, m.userPresent = true, hb.Load1, hb.UserPresent
	st.mu.Unlock()
	if changed {
		st.changed()
	}
}

// Gone forgets machine id: its presence stream was replaced or closed.
func (st *Status) Gone(id string) {
	st.mu.Lock()
	delete(st.machines, id)
	st.mu.Unlock()
}

// report records id's sessions and returns the previous report.
func (st *Status) report(id string, ss []wire.SessionInfo) []wire.SessionInfo {
	st.mu.Lock()
	m := st.machineLocked(id)
	prev := m.sessions
	m.sessions = ss
	st.mu.Unlock()
	st.changed()
	return prev
}

// machineLocked returns id's entry, made if missing.
func (st *Status) machineLocked(id string) *machineStatus {
	m := st.machines[id]
	if m == nil {
		m = &machineStatus{}
		st.machines[id] = m
	}
	return m
}

func (st *Status) changed() {
	if st.onChange != nil {
		st.onChange()
	}
}

// Signals returns id's heartbeat signals: load per core and whether a
// person is logged in.
func (st *Status) Signals(id string) (load1 float64, userPresent, ok bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if m := st.machines[id]; m != nil && m.beat {
		return m.load1, m.userPresent, true
	}
	return 0, false, false
}

// Busy reports whether a load per core is at or above the busy threshold.
func (st *Status) Busy(load1 float64) bool { return load1 >= st.busyLoad }

// Waiting reports whether id's session is waiting for the person at the
// machine to approve it.
func (st *Status) Waiting(id, session string) bool {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if m := st.machines[id]; m != nil {
		for _, s := range m.sessions {
			if s.Session == session && s.State == waitingForApproval {
				return true
			}
		}
	}
	return false
}

// Card is the session part of id's card: nil unless a session is open or
// waiting for approval.
func (st *Status) Card(id string) *wire.Session {
	st.mu.RLock()
	defer st.mu.RUnlock()
	m := st.machines[id]
	if m == nil || len(m.sessions) == 0 {
		return nil
	}
	out := &wire.Session{State: waitingForApproval}
	for _, s := range m.sessions {
		addSession(out, &s)
	}
	if m.beat {
		out.Busy, out.UserPresent = st.Busy(m.load1), m.userPresent
	}
	return out
}

// addSession folds one reported session into a card's session part.
func addSession(out *wire.Session, s *wire.SessionInfo) {
	if s.State == waitingForApproval {
		out.Waiting++
		return
	}
	out.State = "active"
	out.Sessions++
	if !slices.Contains(out.Technicians, s.Technician) {
		out.Technicians = append(out.Technicians, s.Technician)
	}
	// The newest session's mode and path lead.
	out.Mode, out.Path = s.Mode, s.Path
	out.InputPaused = out.InputPaused || s.InputPaused
	if s.Shared {
		out.Shared = append(out.Shared, wire.SharedTerminal{Session: s.Session, Technician: s.Technician})
	}
}

// StatusSpec is how session-status streams open.
var StatusSpec = serve.Spec{Name: "session-status", Deadline: 10 * time.Second, MaxRequest: wire.MaxControl,
	Reply: func() wire.Refusable { return &wire.Reply{} }}

// ServeStatus records the live sessions an agent reports
// (wire.ProtoSessionStatus) and audits those that started or ended.
func (s *Service) ServeStatus(st *serve.Stream, req *wire.SessionStatus) (any, error) {
	id := st.Remote.String()
	if !s.deps.Reach.Online(id) {
		return nil, wire.Errorf(wire.CodeForbidden, "no presence stream from this machine")
	}
	prev := s.status.report(id, req.Sessions)
	wire.Write(st, &wire.Reply{})
	s.auditStatus(id, prev, req.Sessions)
	return nil, nil
}

// auditStatus records sessions that started or ended between two status
// reports of one agent.
func (s *Service) auditStatus(machineID string, prev, cur []wire.SessionInfo) {
	name := machineID
	if m, ok := s.deps.Store.Machine(machineID); ok {
		name = m.Client + "/" + m.Name
	}
	was, is := activeSessions(prev), activeSessions(cur)
	for id, x := range is {
		if _, ok := was[id]; !ok {
			s.deps.Audit.Add(wire.AuditEntry{Event: wire.AuditStarted, Session: id, Technician: x.Technician, Machine: name, Mode: x.Mode, Path: x.Path})
		}
	}
	for id, x := range was {
		if _, ok := is[id]; !ok {
			s.deps.Audit.Add(wire.AuditEntry{Event: wire.AuditEnded, Session: id, Technician: x.Technician, Machine: name, Mode: x.Mode,
				Path: x.Path, Detail: "after " + s.cfg.Now().Sub(x.Started).Round(time.Second).String()})
		}
	}
}

// activeSessions indexes the sessions of a report that are not waiting
// for approval.
func activeSessions(ss []wire.SessionInfo) map[string]wire.SessionInfo {
	out := map[string]wire.SessionInfo{}
	for _, x := range ss {
		if x.State != waitingForApproval {
			out[x.Session] = x
		}
	}
	return out
}
