package readiness

import (
	"slices"
	"time"

	"github.com/readymesh/readymesh/broker/store"
)

// States lists the readiness states in queue order: every state EachState
// and Evaluate give. It is a fixed set, which is what lets the broker's
// metrics use it as a label.
func States() []string { return slices.Clone(states[:]) }

// EachState calls fn with the readiness state of every machine of ms,
// judged as Query judges it: against p.AgentVersion, or else the newest
// version among the machines of its own client, so ms should hold every
// machine of the clients it holds. It is for counting the fleet: it
// builds no card and writes no reason, so past the per-client versions
// (one map entry per client) it allocates nothing. fn must not keep m.
func EachState(ms []store.Machine, now time.Time, p Policy, fn func(m *store.Machine, state string)) {
	base := p.Baseline(ms)
	e := newEvaluator(now, p)
	for i := range ms {
		m := &ms[i]
		f := e.assess(m, base.For(m.Client))
		fn(m, states[f.rank])
	}
}
