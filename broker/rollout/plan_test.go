package rollout

import (
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestPlanFailPct: the plan stores the threshold it runs with: the
// default when the caller left it out, and what the caller gave
// otherwise, 0 included.
func TestPlanFailPct(t *testing.T) {
	tests := []struct {
		desc string
		in   *int
		want int
	}{
		{"left out", nil, DefaultFailPct},
		{"0%", new(0), 0},
		{"25%", new(25), 25},
		{"100%", new(100), 100},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := newRig(t)
			fourMachines(r)
			ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25, FailPct: tc.in})
			if ro.FailPct != tc.want {
				t.Errorf("started with fail_pct %d, want %d", ro.FailPct, tc.want)
			}
			if rec := r.rolloutRecord(ro.ID); rec.FailPct != tc.want {
				t.Errorf("stored fail_pct %d, want %d", rec.FailPct, tc.want)
			}
			if got, _ := r.status(ro.ID); got.FailPct != tc.want {
				t.Errorf("status shows fail_pct %d, want %d", got.FailPct, tc.want)
			}
		})
	}
}
