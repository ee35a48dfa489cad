package alerts

import (
	"fmt"

	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// Rollouts and alerts meet twice. A rollout that failures paused opens
// its own alert. And an agent that a running rollout is about to bring
// level opens no agent-behind alert: the machines of a rollout wait for
// their wave, or for the machine to come back, and an alert for each
// would be noise exactly while an MSP fixes what it says. Once the
// rollout pauses or ends, or gives up on the machine, the alert opens
// again, naming the rollout when the machine is still in it.

// RolloutStore lists the stored rollouts by their ID and state. A Store
// that also implements it (as *store.Store does) gets rollout-paused
// alerts, and agent-behind alerts withheld while a rollout updates the
// machine (with Config.Steps).
type RolloutStore interface {
	RolloutsWhere(keep func(id, state string) bool) ([]store.RolloutRecord, error)
}

// Steps tells where a machine stands in the rollouts still moving: it
// sets a card's Readiness.Rollout. The rollout room (rollout.Room) works
// every machine's step out at each of its ticks, on every broker, from
// the update jobs and the check-ins; asking it costs a look-up in
// memory, where reading the jobs again would cost a store read per
// machine.
type Steps interface {
	Annotate(c *wire.Card)
}

// Rollouts is what one evaluation knows of the rollouts, read once by
// ReadRollouts: every rollout's state as stored now, the paused ones in
// full, and where to ask for a machine's step.
type Rollouts struct {
	steps  Steps
	state  map[string]string               // rollout ID → its stored state
	active int                             // rollouts canary, rolling or paused
	paused []store.RolloutRecord           // those paused
	byID   map[string]*store.RolloutRecord // paused, by ID
}

// ReadRollouts reads the rollouts for one evaluation. Only the paused
// rollouts are decoded in full; the others cost a read of their ID and
// state (see store.Store.RolloutsWhere), whatever machines they hold.
// steps may be nil: then no alert is withheld.
func ReadRollouts(src RolloutStore, steps Steps) (*Rollouts, error) {
	ro := &Rollouts{steps: steps, state: map[string]string{}}
	paused, err := src.RolloutsWhere(func(id, state string) bool {
		ro.state[id] = state
		return state == wire.RolloutPaused
	})
	if err != nil {
		return nil, fmt.Errorf("rollouts: %w", err)
	}
	ro.paused = paused
	ro.byID = make(map[string]*store.RolloutRecord, len(paused))
	for i := range paused {
		ro.byID[paused[i].ID] = &paused[i]
	}
	for _, s := range ro.state {
		if s == wire.RolloutCanary || s == wire.RolloutRolling || s == wire.RolloutPaused {
			ro.active++
		}
	}
	return ro, nil
}

// Paused lists the paused rollouts; none when ro is nil.
func (ro *Rollouts) Paused() []store.RolloutRecord {
	if ro == nil {
		return nil
	}
	return ro.paused
}

// behind judges machine id, whose agent is behind (rd): withhold when a
// running rollout will bring it to at least rd.NewestAgentVersion and
// has not given up on it (its step is waiting, queued, installing, or
// updated and not yet on the record); else why says what the rollout
// the machine is in does, for the alert's detail ("" when it is in
// none). The state comes from the store, read at this evaluation, not
// from the room's last tick: alerts are kicked as a rollout pauses,
// before the room looks again.
func (ro *Rollouts) behind(id string, rd *wire.Readiness) (withhold bool, why string) {
	if ro == nil || ro.steps == nil || ro.active == 0 {
		return false, ""
	}
	c := wire.Card{ID: id, Readiness: *rd}
	c.Readiness.Reasons = nil // Annotate rewrites the agent-behind reason in place
	ro.steps.Annotate(&c)
	ref := c.Readiness.Rollout
	if ref == nil {
		return false, ""
	}
	state, ok := ro.state[ref.ID]
	if !ok {
		state = ref.State
	}
	switch {
	case state == wire.RolloutDone || state == wire.RolloutAborted:
		// It no longer holds the machine; nor does the machine's card name it.
		return false, ""
	case state == wire.RolloutPaused:
		return false, ro.pausedWhy(ref.ID)
	case release.CompareVersions(ref.Version, rd.NewestAgentVersion) < 0:
		return false, "rollout " + ref.ID + " brings it only to " + ref.Version
	case ref.Step == wire.StepWaiting || ref.Step == wire.StepQueued || ref.Step == wire.StepInstalling || ref.Step == wire.StepUpdated:
		return true, ""
	}
	return false, readiness.RolloutPhrase(ref) // it failed, rolled back, was skipped or cancelled
}

// pausedWhy names paused rollout id and who or what paused it.
func (ro *Rollouts) pausedWhy(id string) string {
	head := "rollout " + id + " paused"
	r := ro.byID[id]
	switch {
	case r == nil:
		return head
	case r.PausedBy != "":
		return head + " by " + r.PausedBy
	case r.PausedReason != "":
		return head + ": " + r.PausedReason
	}
	return head
}

// RolloutAlerts adds to out an alert for each rollout in rs that failures
// paused (an admin's pause is no alert): wire.AlertRolloutPaused, ID
// "rollout/ID", no machine, the client when the rollout names exactly
// one (else only admins and technicians of every client see it). It
// resolves when the rollout is resumed or aborted.
func RolloutAlerts(rs []store.RolloutRecord, out map[string]wire.Alert) {
	for i := range rs {
		r := &rs[i]
		if r.State != wire.RolloutPaused || r.PausedBy != "" {
			continue
		}
		a := wire.Alert{ID: "rollout/" + r.ID, Kind: wire.AlertRolloutPaused, Cadence: wire.CadenceReadiness,
			Since: r.PausedAt.UTC(), Detail: "rollout " + r.ID + " of " + r.Version + " paused: " + r.PausedReason}
		if len(r.Clients) == 1 {
			a.Client = r.Clients[0]
		}
		out[a.ID] = a
	}
}

// rollouts reads the rollouts for one evaluation; nil when the store
// lists none, or could not be read (logged).
func (a *Alerts) rollouts() *Rollouts {
	src, ok := a.store.(RolloutStore)
	if !ok {
		return nil
	}
	ro, err := ReadRollouts(src, a.cfg.Steps)
	if err != nil {
		a.cfg.Logger.Warn("rollouts not read for alerts", "err", err)
		return nil
	}
	return ro
}
