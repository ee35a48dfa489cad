package alerts

import (
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Rollouts lists the stored rollouts. A Store that also implements it
// (as *store.Store does) gets rollout-paused alerts.
type Rollouts interface {
	Rollouts(keep func(*store.RolloutRecord) bool) ([]store.RolloutRecord, error)
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

// rolloutAlerts adds the rollout alerts to cur, when the store lists
// rollouts.
func (a *Alerts) rolloutAlerts(cur map[string]wire.Alert) {
	src, ok := a.store.(Rollouts)
	if !ok {
		return
	}
	rs, err := src.Rollouts(func(r *store.RolloutRecord) bool { return r.State == wire.RolloutPaused })
	if err != nil {
		a.cfg.Logger.Warn("rollouts not read for alerts", "err", err)
		return
	}
	RolloutAlerts(rs, cur)
}
