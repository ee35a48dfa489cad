package readiness

import (
	"time"

	"github.com/readymesh/readymesh/broker/store"
)

// Defaults used for zero fields of a Policy.
const (
	DefaultGrace             = 10 * time.Minute
	DefaultCheckInInterval   = time.Hour
	DefaultMaxPendingUpdates = 10
	DefaultMaxPendingAge     = 30 * 24 * time.Hour
)

// Policy holds the thresholds that turn stored facts into a readiness state.
// The zero value is ready to use: a zero (or negative) field means its
// documented default.
type Policy struct {
	// Grace is added to twice the check-in interval before a silent machine
	// is called stale. It absorbs clock skew and a slow check-in; a longer
	// grace keeps a dead agent looking fresh for longer. Zero means 10
	// minutes.
	Grace time.Duration

	// DefaultInterval is the check-in interval assumed when the latest
	// check-in did not report one (runtime check_in_interval_s is zero).
	// Zero means 1 hour.
	DefaultInterval time.Duration

	// MaxPendingUpdates is how many pending updates a machine may carry and
	// still be ready; one more makes it degraded. Zero means 10.
	MaxPendingUpdates int

	// MaxPendingAge is how long an update may stay pending, counted from
	// when a broker first saw it; an older one makes the machine degraded.
	// Zero means 30 days.
	MaxPendingAge time.Duration

	// AgentVersion is the agent release the MSP rolls out. When set, an
	// agent older than it is behind, in every client, and what agents
	// report cannot move the mark: one agent reporting a made-up 999.0
	// would otherwise mark its whole client degraded. Empty means that
	// each machine is judged against the newest version reported by the
	// machines of its own client (see Baseline), so one client's agents
	// never mark another's behind.
	AgentVersion string
}

// Baseline is the agent version the machines of each client are judged
// against, computed once for a listing. The zero value judges no machine
// behind. It is read-only once made, so any number of goroutines may use
// it at once.
type Baseline struct {
	pin      string            // Policy.AgentVersion; when set, byClient is nil
	byClient map[string]string // client → newest version its machines report
}

// Baseline returns the versions the machines of ms are judged against:
// p.AgentVersion for every client when set; else, for each client, the
// newest version (see Newest) among the machines of ms of that client.
// Newest versions are per client because a technician sees only some
// clients: a version only another client's agents report is not a fact
// about this client, and must not mark its machines behind. ms should
// hold every machine of the clients it holds. It costs one pass over ms
// and a map of one entry per client.
func (p Policy) Baseline(ms []store.Machine) Baseline {
	if p.AgentVersion != "" {
		return Baseline{pin: p.AgentVersion}
	}
	acc := perClient{}
	for i := range ms {
		acc.add(&ms[i])
	}
	return acc.baseline()
}

// baselineOf is Baseline over the machines of ms at indices in.
func (p Policy) baselineOf(ms []store.Machine, in []int32) Baseline {
	if p.AgentVersion != "" {
		return Baseline{pin: p.AgentVersion}
	}
	acc := perClient{}
	for _, i := range in {
		acc.add(&ms[i])
	}
	return acc.baseline()
}

// perClient gathers the newest version of each client.
type perClient map[string]*newest

func (pc perClient) add(m *store.Machine) {
	n := pc[m.Client]
	if n == nil {
		n = new(newest)
		pc[m.Client] = n
	}
	n.add(m.AgentVersion)
}

func (pc perClient) baseline() Baseline {
	b := Baseline{byClient: make(map[string]string, len(pc))}
	for c, n := range pc {
		b.byClient[c] = n.v
	}
	return b
}

// For returns the version client's machines are judged against; empty
// means that none of them is behind.
func (b Baseline) For(client string) string {
	if b.pin != "" {
		return b.pin
	}
	return b.byClient[client]
}

// NewestOf returns the version the machines of client are judged against:
// p.AgentVersion when set, else the newest version among the machines of
// ms of that client. It is Baseline for one machine's card.
func (p Policy) NewestOf(ms []store.Machine, client string) string {
	if p.AgentVersion != "" {
		return p.AgentVersion
	}
	var n newest
	for i := range ms {
		if ms[i].Client == client {
			n.add(ms[i].AgentVersion)
		}
	}
	return n.v
}

// DefaultPolicy returns the production policy with every field spelled out.
// It behaves exactly like the zero Policy.
func DefaultPolicy() Policy {
	return Policy{
		Grace:             DefaultGrace,
		DefaultInterval:   DefaultCheckInInterval,
		MaxPendingUpdates: DefaultMaxPendingUpdates,
		MaxPendingAge:     DefaultMaxPendingAge,
	}
}

// resolved returns p with every zero or negative field replaced by its
// default.
func (p Policy) resolved() Policy {
	d := DefaultPolicy()
	if p.Grace <= 0 {
		p.Grace = d.Grace
	}
	if p.DefaultInterval <= 0 {
		p.DefaultInterval = d.DefaultInterval
	}
	if p.MaxPendingUpdates <= 0 {
		p.MaxPendingUpdates = d.MaxPendingUpdates
	}
	if p.MaxPendingAge <= 0 {
		p.MaxPendingAge = d.MaxPendingAge
	}
	return p
}

// Resolved returns p with every zero or negative field replaced by its
// default, for callers that read the thresholds themselves (alerts).
func (p Policy) Resolved() Policy { return p.resolved() }
