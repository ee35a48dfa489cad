// Package checkin is the readiness layer's intake: the stream on which
// agents deposit their snapshots (wire.ProtoCheckIn).
//
// A check-in is acknowledged only once its store transaction is committed
// (package store groups concurrent ones into one commit) and, in a
// cluster, once a second broker holds it, so no acknowledged check-in is
// lost with a broker. A check-in naming another machine than the agent's
// own key, an unenrolled key, an out-of-order sequence and anything over
// the size limit are refused, and nothing stored changes. Each ack carries
// the fleet's metered-connection policy for the machine, if one is set.
package checkin

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Replication carries a stored check-in to the other brokers.
type Replication interface {
	CopyToPeer(ctx context.Context, keys ...store.Key)
	Written(keys ...store.Key)
}

// Intake stores check-ins.
type Intake struct {
	store *store.Store
	repl  Replication
	// stored, if not nil, is called after each new check-in is
	// acknowledged: queued work waits for a fresh one.
	stored func()
	// quiet, if not nil, hears of each check-in of an agent in quiet
	// mode, with when its next one is due (SetQuiet).
	quiet       func(id string, at, next time.Time)
	now         func() time.Time
	maxSnapshot int
	results     *prometheus.CounterVec
}

// New returns the intake. maxSnapshot bounds an encoded check-in in
// bytes; reg, if not nil, receives readymesh_checkins_total.
func New(st *store.Store, repl Replication, stored func(), now func() time.Time, maxSnapshot int, reg prometheus.Registerer) *Intake {
	in := &Intake{store: st, repl: repl, stored: stored, now: now, maxSnapshot: maxSnapshot,
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_checkins_total",
			Help: "Check-ins by result: ok (committed) or the error code. A counter: rate() of it is check-ins per second."}, []string{"result"})}
	if reg != nil {
		reg.MustRegister(in.results)
	}
	return in
}

// SetQuiet makes f hear of each acknowledged check-in of an agent in
// quiet mode (on a metered connection, with the quiet policy), with when
// its next one is due: the reachability layer shows the machine quiet,
// expected back then. It must be called before the intake serves.
func (in *Intake) SetQuiet(f func(id string, at, next time.Time)) { in.quiet = f }

// Spec is how check-in streams open: bounded by the snapshot limit, and
// every outcome counted.
func (in *Intake) Spec() serve.Spec {
	return serve.Spec{Name: "checkin", Deadline: time.Minute, MaxRequest: in.maxSnapshot,
		Reply:  func() wire.Refusable { return &wire.CheckInAck{} },
		Result: func(r string) { in.results.WithLabelValues(r).Inc() }}
}

// Serve stores one check-in and acknowledges it once committed.
func (in *Intake) Serve(s *serve.Stream, ci *wire.CheckIn) (any, error) {
	remote := s.Remote.String()
	if ci.MachineID != remote {
		return nil, wire.Errorf(wire.CodeForbidden, "agent %s may not write the record of machine %s", remote, ci.MachineID)
	}
	res, err := in.store.CheckIn(ci, in.now())
	if err != nil {
		return &wire.CheckInAck{Seq: res.StoredSeq}, wire.Errorf(code(err), "%s", err.Error())
	}
	if !res.Duplicate {
		key := store.Key{Kind: store.KindMachine, ID: remote}
		in.repl.CopyToPeer(context.Background(), key)
		in.repl.Written(key)
	}
	// Committed: only now is the check-in acknowledged.
	wire.Write(s, &wire.CheckInAck{Seq: ci.Seq, Duplicate: res.Duplicate, StoredAt: res.StoredAt,
		Policy: in.policy(remote)})
	if in.stored != nil {
		in.stored()
	}
	if rt := ci.Snapshot.Runtime; in.quiet != nil && rt.Metered && rt.OnMetered == wire.MeteredQuiet && !res.Duplicate {
		every := time.Duration(rt.CheckInIntervalSec) * time.Second
		in.quiet(remote, res.StoredAt, res.StoredAt.Add(every))
	}
	return nil, nil
}

// policy is the fleet's metered-connection policy for machine id, for its
// ack: a quiet agent has no presence stream and learns a change here. An
// empty policy when none is set; nil only for an unknown machine.
func (in *Intake) policy(id string) *wire.AgentPolicy {
	m, ok := in.store.Machine(id)
	if !ok {
		return nil
	}
	p := in.store.AgentPolicy(&m)
	return &p // an empty one too: "none is set", which nil would not say
}

// code is the code of a check-in the store refused.
func code(err error) string {
	switch {
	case errors.Is(err, store.ErrUnknownMachine):
		return wire.CodeUnauthorized
	case errors.Is(err, store.ErrSequence):
		return wire.CodeConflict
	case errors.Is(err, store.ErrRemoved):
		return wire.CodeRemoved
	case errors.Is(err, store.ErrNeedFull):
		return wire.CodeNeedFull
	}
	return wire.CodeInternal
}
