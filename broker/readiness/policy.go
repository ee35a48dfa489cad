package readiness

import "time"

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
