package alerts

import (
	"fmt"
	"time"

	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Evaluate works out the alerts that hold at now, by alert ID, with the
// thresholds of c (whose Policy must be resolved). An agent is behind when
// it is older than the pinned version or else the newest among the
// machines of its own client (readiness.Policy.Baseline): ms should hold
// every machine. Its alert waits while a running rollout of ro brings it
// level (see Rollouts); ro may be nil.
func Evaluate(ms []store.Machine, reach func(*store.Machine) wire.Reachability, ro *Rollouts, now time.Time, c *Config) map[string]wire.Alert {
	out := map[string]wire.Alert{}
	base := c.Policy.Baseline(ms)
	for i := range ms {
		m := &ms[i]
		add := func(kind, cadence string, since time.Time, detail string) {
			a := wire.Alert{ID: m.ID + "/" + kind, Kind: kind, Cadence: cadence, Machine: m.Client + "/" + m.Name,
				Client: m.Client, Since: since.UTC(), Detail: detail}
			out[a.ID] = a
		}
		rc := reach(m)
		if since, detail, ok := offlineAlert(m, rc, now, c); ok {
			add(wire.AlertOffline, wire.CadenceReachability, since, detail)
		}
		readinessAlerts(m, rc, base.For(m.Client), ro, now, c, add)
	}
	return out
}

// readinessAlerts adds m's alerts on stored state. rc, the overlay, only
// tells when a quiet machine's next check-in is due.
func readinessAlerts(m *store.Machine, rc wire.Reachability, newest string, ro *Rollouts, now time.Time, c *Config, add func(kind, cadence string, since time.Time, detail string)) {
	if m.LastCheckIn == nil {
		if now.Sub(m.EnrolledAt) > c.NeverCheckedIn {
			add(wire.AlertNeverCheckedIn, wire.CadenceReadiness, m.EnrolledAt,
				fmt.Sprintf("enrolled %s ago and never checked in", now.Sub(m.EnrolledAt).Round(time.Minute)))
		}
		return
	}
	interval := time.Duration(m.Runtime.CheckInIntervalSec) * time.Second
	if interval <= 0 {
		interval = c.Policy.DefaultInterval
	}
	limit := time.Duration(c.OverdueIntervals) * interval
	due, why := m.LastCheckIn.At.Add(limit), fmt.Sprintf("%d intervals of %s", c.OverdueIntervals, interval)
	if q := quietDue(rc, interval); q.After(due) {
		due, why = q, "quiet on a metered connection, its check-in was due "+rc.ExpectedBack.UTC().Format(time.RFC3339)
	}
	if now.After(due) {
		add(wire.AlertCheckInOverdue, wire.CadenceReadiness, due,
			fmt.Sprintf("no check-in for %s (%s)", now.Sub(m.LastCheckIn.At).Round(time.Second), why))
	}
	if card := readiness.Evaluate(m, newest, now, c.Policy); card.AgentBehind {
		if withhold, why := ro.behind(m.ID, &card); !withhold {
			detail := fmt.Sprintf("agent %s is behind %s", m.AgentVersion, card.NewestAgentVersion)
			if why != "" {
				detail += "; " + why
			}
			add(wire.AlertAgentBehind, wire.CadenceReadiness, m.LastCheckIn.At, detail)
		}
	}
	updateAlerts(m, now, c, add)
}

// updateAlerts adds m's alert on pending updates: too many, or one too old.
func updateAlerts(m *store.Machine, now time.Time, c *Config, add func(kind, cadence string, since time.Time, detail string)) {
	var oldest *time.Time
	for _, u := range m.PendingUpdates {
		if u.FirstSeen != nil && (oldest == nil || u.FirstSeen.Before(*oldest)) {
			oldest = u.FirstSeen
		}
	}
	switch n := len(m.PendingUpdates); {
	case n > c.Policy.MaxPendingUpdates:
		add(wire.AlertUpdates, wire.CadenceReadiness, m.LastCheckIn.At,
			fmt.Sprintf("%d pending updates (limit %d)", n, c.Policy.MaxPendingUpdates))
	case oldest != nil && now.Sub(*oldest) > c.Policy.MaxPendingAge:
		add(wire.AlertUpdates, wire.CadenceReadiness, oldest.Add(c.Policy.MaxPendingAge),
			fmt.Sprintf("an update pending since %s (limit %s)", oldest.UTC().Format(time.DateOnly), c.Policy.MaxPendingAge))
	}
}

// quietDue is when a machine quiet on a metered connection is overdue:
// one interval past the quiet check-in the overlay expects, as a quiet
// machine checks in on its long cadence (hours), not its usual one. Zero
// for any other machine, or a quiet one with no check-in expected.
func quietDue(rc wire.Reachability, interval time.Duration) time.Time {
	if rc.Online || rc.OfflineReason != wire.AwayQuiet || rc.ExpectedBack == nil {
		return time.Time{}
	}
	return rc.ExpectedBack.Add(interval)
}
