package rollout

import (
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// ref is one machine's place in a view.
type ref struct {
	view *view
	step int // index into view.steps
}

// Annotate adds to card c the rollout its machine is in: the newest
// active rollout in which it still has a step to go; else, when its
// agent is behind, the newest active rollout that targets it with a
// version that would bring it level (the step then says why it has not).
// The agent-behind reason names that rollout. It also sets the card's
// LastUpdate when the machine's update jobs hold a newer report than its
// record (the check-in that carried it went to another broker).
func (r *Room) Annotate(c *wire.Card) {
	r.lastUpdate(c.ID, &c.Readiness)
	r.mu.Lock()
	refs := r.machines[c.ID]
	ref := pick(refs, &c.Readiness)
	var out *wire.RolloutRef
	if ref != nil {
		s := &ref.view.steps[ref.step]
		out = &wire.RolloutRef{ID: ref.view.r.ID, Version: ref.view.r.Version, State: ref.view.r.State,
			Step: s.Step, Wave: s.Wave, Detail: s.Detail}
	}
	r.mu.Unlock()
	if out != nil {
		readiness.WithRollout(&c.Readiness, out)
	}
}

// pick chooses among a machine's refs, newest rollout first.
func pick(refs []ref, rd *wire.Readiness) *ref {
	for i := range refs {
		if !terminal(refs[i].view.steps[refs[i].step].Step) {
			return &refs[i]
		}
	}
	if !rd.AgentBehind {
		return nil
	}
	for i := range refs {
		if release.CompareVersions(refs[i].view.r.Version, rd.NewestAgentVersion) >= 0 {
			return &refs[i]
		}
	}
	return nil
}
