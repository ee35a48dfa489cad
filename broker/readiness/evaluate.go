package readiness

import (
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Ranks of the readiness states, in queue order. states maps a rank to its
// wire name.
const (
	rankReady uint8 = iota
	rankDegraded
	rankConsent
	rankStale
	rankIncomplete
	rankUnknown // a state this package does not know; sorts last
)

var states = [...]string{
	rankReady:      wire.StateReady,
	rankDegraded:   wire.StateDegraded,
	rankConsent:    wire.StateConsentRequired,
	rankStale:      wire.StateStale,
	rankIncomplete: wire.StateIncomplete,
}

// rankOf returns the queue rank of a wire state name.
func rankOf(state string) uint8 {
	for r, s := range states {
		if s == state {
			return uint8(r)
		}
	}
	return rankUnknown
}

// consentGap says why a machine that requires approval lacks a valid one.
type consentGap uint8

const (
	consentOK       consentGap = iota
	consentNever               // required, never approved
	consentNoExpiry            // approved, but no expiry on record
	consentExpired             // approval expired
)

// facts is what assess learns about one machine: every rule that applies,
// with the numbers its reason needs. It costs no allocation (newest is
// one of the Baseline's strings), so a machine that Query filters out
// costs no garbage.
type facts struct {
	newest    string // the version m's agent is judged against
	rank      uint8
	never     bool // no committed check-in
	noOS      bool // a check-in without an OS
	stale     bool
	behind    bool // agent older than newest
	tooMany   bool // more pending updates than allowed
	consent   consentGap
	oldCount  int32         // pending updates older than MaxPendingAge
	oldest    int32         // index of the oldest of those
	oldestAge time.Duration // its age
	silent    time.Duration // time since the last check-in, if stale
	interval  time.Duration // expected check-in interval, if stale
}

// evaluator holds what is shared by every machine in one evaluation. It is
// used by one goroutine.
type evaluator struct {
	now time.Time
	p   Policy // resolved

	// Scratch and slabs. When block is not zero, snapshot ages and reason
	// lists are carved from blocks of that many, so that a large listing
	// does not pay one allocation per card for each; zero allocates each
	// exactly.
	w     reasonWriter
	block int
	ages  []float64
	lists []string
}

func newEvaluator(now time.Time, p Policy) *evaluator {
	return &evaluator{now: now, p: p.resolved()}
}

// Evaluate computes the readiness layer of m's card. newestAgent is the
// version m's agent is judged against (see Policy.NewestOf); empty means
// it is not judged behind. Every field of the result is set; Reasons and
// PendingUpdates are never nil. SnapshotAgeSec is nil before the first
// check-in, and negative if the agent's clock runs ahead of the broker's.
//
// The result shares pointers and slices with m (OS, PendingUpdates,
// Approval, LastCheckIn); neither may be modified afterwards.
func Evaluate(m *store.Machine, newestAgent string, now time.Time, p Policy) wire.Readiness {
	e := newEvaluator(now, p)
	f := e.assess(m, newestAgent)
	var r wire.Readiness
	e.fill(&r, m, &f)
	return r
}

// assess applies every rule to m, whose agent is judged against newest.
func (e *evaluator) assess(m *store.Machine, newest string) facts {
	var f facts
	f.never = m.LastCheckIn == nil
	f.noOS = !f.never && m.OS == nil
	if !f.never {
		e.checkSilence(m, &f)
	}
	f.consent = e.consentGap(&m.Approval)
	f.newest = newest
	f.behind = m.AgentVersion != "" && f.newest != "" &&
		m.AgentVersion != f.newest && CompareVersions(m.AgentVersion, f.newest) < 0
	f.tooMany = len(m.PendingUpdates) > e.p.MaxPendingUpdates
	e.checkPendingAge(m.PendingUpdates, &f)
	f.rank = f.winner()
	return f
}

// checkSilence sets f.stale when the last check-in is older than twice the
// interval plus grace.
func (e *evaluator) checkSilence(m *store.Machine, f *facts) {
	interval := e.p.DefaultInterval
	if s := m.Runtime.CheckInIntervalSec; s > 0 {
		interval = time.Duration(s) * time.Second
	}
	silent := e.now.Sub(m.LastCheckIn.At)
	if silent > 2*interval+e.p.Grace {
		f.stale, f.silent, f.interval = true, silent, interval
	}
}

func (e *evaluator) consentGap(a *wire.Approval) consentGap {
	switch {
	case !a.Required:
		return consentOK
	case a.LastApprovedAt == nil:
		return consentNever
	case a.ExpiresAt == nil:
		return consentNoExpiry
	case !a.ExpiresAt.After(e.now):
		return consentExpired
	}
	return consentOK
}

// checkPendingAge counts pending updates first seen more than MaxPendingAge
// ago and remembers the oldest. Updates without FirstSeen are not counted.
func (e *evaluator) checkPendingAge(ups []wire.PendingUpdate, f *facts) {
	for i := range ups {
		seen := ups[i].FirstSeen
		if seen == nil {
			continue
		}
		age := e.now.Sub(*seen)
		if age <= e.p.MaxPendingAge {
			continue
		}
		if f.oldCount == 0 || age > f.oldestAge {
			f.oldest, f.oldestAge = int32(i), age
		}
		f.oldCount++
	}
}

// winner returns the rank of the first state, in precedence order, whose
// rule applies.
func (f *facts) winner() uint8 {
	switch {
	case f.never || f.noOS:
		return rankIncomplete
	case f.stale:
		return rankStale
	case f.consent != consentOK:
		return rankConsent
	case f.behind || f.tooMany || f.oldCount > 0:
		return rankDegraded
	}
	return rankReady
}

// fill sets every field of the zero Readiness r from m and its facts.
func (e *evaluator) fill(r *wire.Readiness, m *store.Machine, f *facts) {
	r.State = states[f.rank]
	r.Reasons = e.reasons(m, f)
	r.EnrolledAt = m.EnrolledAt
	r.AgentVersion = m.AgentVersion
	r.NewestAgentVersion = f.newest
	r.AgentBehind = f.behind
	r.OS = m.OS
	r.PendingUpdates = m.PendingUpdates
	if r.PendingUpdates == nil {
		r.PendingUpdates = []wire.PendingUpdate{} // JSON [] rather than null
	}
	r.UpdatesUnknown = updatesUnknown(m.CollectorErrs)
	r.Approval = m.Approval
	r.LastUpdate = m.LastUpdate
	r.LastUncleanEnd = m.LastUncleanEnd // a fact for people; the state does not weigh it
	c := m.LastCheckIn
	if c == nil {
		return
	}
	r.LastCheckIn = &c.At
	r.CheckInReason = c.Reason
	r.CheckInSeq = c.Seq
	if !c.CollectedAt.IsZero() {
		r.SnapshotAgeSec = e.age()
		*r.SnapshotAgeSec = e.now.Sub(c.CollectedAt).Seconds()
	}
}

// age returns a new slot for a snapshot age.
func (e *evaluator) age() *float64 {
	if len(e.ages) == 0 {
		e.ages = make([]float64, max(e.block, 1))
	}
	p := &e.ages[0]
	e.ages = e.ages[1:]
	return p
}

// list returns a new slice of n strings. Its capacity is n, so appending
// to it never touches a neighbour's.
func (e *evaluator) list(n int) []string {
	if len(e.lists) < n {
		e.lists = make([]string, max(e.block, n))
	}
	l := e.lists[:n:n]
	e.lists = e.lists[n:]
	return l
}

// updatesCollector is the agent collector that reports pending updates.
const updatesCollector = "updates"

// updatesUnknown is why the machine's pending updates are unknown: the
// error its updates collector reported, or "" when it answered.
func updatesUnknown(errs []wire.CollectorError) string {
	for _, e := range errs {
		if e.Collector == updatesCollector {
			return e.Error
		}
	}
	return ""
}
