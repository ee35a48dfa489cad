package readiness

import (
	"slices"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestWithRollout(t *testing.T) {
	ref := func(state, step string, wave int, detail string) *wire.RolloutRef {
		return &wire.RolloutRef{ID: "3f9a0c1b2d4e", Version: "1.5.0", State: state, Step: step, Wave: wave, Detail: detail}
	}
	tests := []struct {
		desc string
		ref  *wire.RolloutRef
		want string // the agent-behind reason
	}{
		{"canary, queued", ref(wire.RolloutCanary, wire.StepQueued, 0, ""),
			"agent 1.3.0 is behind 1.5.0; rollout 3f9a0c1b2d4e updating it (canary)"},
		{"wave 1, waiting", ref(wire.RolloutCanary, wire.StepWaiting, 1, ""),
			"agent 1.3.0 is behind 1.5.0; rollout 3f9a0c1b2d4e updating it (wave 1)"},
		{"paused before it", ref(wire.RolloutPaused, wire.StepWaiting, 1, ""),
			"agent 1.3.0 is behind 1.5.0; rollout 3f9a0c1b2d4e paused before updating it (wave 1)"},
		{"rolled back", ref(wire.RolloutRolling, wire.StepRolledBack, 1, "exited with status 2 at start"),
			"agent 1.3.0 is behind 1.5.0; rollout 3f9a0c1b2d4e rolled-back on it: exited with status 2 at start"},
		{"no rollout", nil, "agent 1.3.0 is behind 1.5.0"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			m := readyMachine()
			m.AgentVersion = "1.3.0"
			r := Evaluate(&m, "1.5.0", now, Policy{})
			WithRollout(&r, tc.ref)
			WithRollout(&r, tc.ref) // a second call does not add twice
			if !slices.Contains(r.Reasons, tc.want) || r.Rollout != tc.ref {
				t.Errorf("reasons %q, rollout %+v; want %q", r.Reasons, r.Rollout, tc.want)
			}
		})
	}
	// A machine not behind keeps its reasons and gets the rollout.
	m := readyMachine()
	r := Evaluate(&m, "1.4.0", now, Policy{})
	WithRollout(&r, ref(wire.RolloutCanary, wire.StepQueued, 0, ""))
	if len(r.Reasons) != 0 || r.Rollout == nil {
		t.Errorf("reasons %q, rollout %v", r.Reasons, r.Rollout)
	}
}

func TestLastUpdateOnCard(t *testing.T) {
	m := readyMachine()
	if r := Evaluate(&m, "", now, Policy{}); r.LastUpdate != nil {
		t.Errorf("last update %+v before any", r.LastUpdate)
	}
	m.LastUpdate = &wire.UpdateReport{From: "1.3.0", To: "1.4.0", Outcome: wire.ReasonUpdated, At: now}
	if r := Evaluate(&m, "", now, Policy{}); r.LastUpdate != m.LastUpdate {
		t.Errorf("last update %+v, want the machine's", r.LastUpdate)
	}
}
