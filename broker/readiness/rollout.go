package readiness

import (
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// WithRollout records on r the rollout its machine is in (see
// wire.Readiness.Rollout), and makes the agent-behind reason name it:
// "agent 0.2.0 is behind 0.3.0; rollout 3f9a0c1b2d4e updating it
// (canary)". ref may be nil, which changes nothing.
func WithRollout(r *wire.Readiness, ref *wire.RolloutRef) {
	if ref == nil {
		return
	}
	r.Rollout = ref
	if !r.AgentBehind {
		return
	}
	prefix := "agent " + r.AgentVersion + " is behind "
	for i, s := range r.Reasons {
		if strings.HasPrefix(s, prefix) && !strings.Contains(s, ";") {
			r.Reasons[i] = s + "; " + RolloutPhrase(ref)
			return
		}
	}
}

// RolloutPhrase says what rollout ref does for its machine, for the
// agent-behind reason.
func RolloutPhrase(ref *wire.RolloutRef) string {
	wave := "canary"
	if ref.Wave == 1 {
		wave = "wave 1"
	}
	head := "rollout " + ref.ID
	switch {
	case ref.State == wire.RolloutPaused && !terminalStep(ref.Step):
		return head + " paused before updating it (" + wave + ")"
	case ref.Step == wire.StepWaiting || ref.Step == wire.StepQueued || ref.Step == wire.StepInstalling:
		return head + " updating it (" + wave + ")"
	case ref.Detail != "":
		return head + " " + ref.Step + " on it: " + ref.Detail
	}
	return head + " " + ref.Step + " on it"
}

func terminalStep(step string) bool {
	return step != wire.StepWaiting && step != wire.StepQueued && step != wire.StepInstalling
}
