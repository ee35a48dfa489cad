package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Alerts run on two cadences, as the console keeps the layers apart:
// reachability alerts watch the live overlay (a machine offline longer
// than a threshold), readiness alerts the stored state (check-ins overdue,
// an agent behind, pending updates piling up or ageing, a machine enrolled
// that never checked in). They open and resolve by themselves at each
// evaluation; a webhook, if set, gets every change as JSON.
//
// Every broker of a cluster evaluates them (so any broker lists them), and
// one posts to the webhook: the alive member with the smallest name, so a
// change is posted once. Alerts live in memory: after a restart, or when
// another broker takes over the posting, they are worked out again from
// the stored state and the overlay, and open alerts may be posted again.

// alertRules are the thresholds.
type alertRules struct {
	offline          time.Duration
	overdueIntervals int
	neverCheckedIn   time.Duration
	policy           readiness.Policy
}

// evaluateAlerts works out the alerts that hold at now.
func evaluateAlerts(ms []store.Machine, reach func(*store.Machine) wire.Reachability, now time.Time, r alertRules) map[string]wire.Alert {
	out := map[string]wire.Alert{}
	newest := r.policy.Newest(ms)
	for i := range ms {
		m := &ms[i]
		add := func(kind, cadence string, since time.Time, detail string) {
			a := wire.Alert{ID: m.ID + "/" + kind, Kind: kind, Cadence: cadence, Machine: m.Client + "/" + m.Name,
				Client: m.Client, Since: since.UTC(), Detail: detail}
			out[a.ID] = a
		}
		rc := reach(m)
		if !rc.Online && m.LastSeen != nil && now.Sub(*m.LastSeen) > r.offline {
			add(wire.AlertOffline, wire.CadenceReachability, *m.LastSeen,
				fmt.Sprintf("offline since %s (threshold %s)", m.LastSeen.UTC().Format(time.RFC3339), r.offline))
		}
		if m.LastCheckIn == nil {
			if now.Sub(m.EnrolledAt) > r.neverCheckedIn {
				add(wire.AlertNeverCheckedIn, wire.CadenceReadiness, m.EnrolledAt,
					fmt.Sprintf("enrolled %s ago and never checked in", now.Sub(m.EnrolledAt).Round(time.Minute)))
			}
			continue
		}
		interval := time.Duration(m.Runtime.CheckInIntervalSec) * time.Second
		if interval <= 0 {
			interval = r.policy.DefaultInterval
		}
		if limit := time.Duration(r.overdueIntervals) * interval; now.Sub(m.LastCheckIn.At) > limit {
			add(wire.AlertCheckInOverdue, wire.CadenceReadiness, m.LastCheckIn.At.Add(limit),
				fmt.Sprintf("no check-in for %s (%d intervals of %s)", now.Sub(m.LastCheckIn.At).Round(time.Second), r.overdueIntervals, interval))
		}
		card := readiness.Evaluate(m, newest, now, r.policy)
		if card.AgentBehind {
			add(wire.AlertAgentBehind, wire.CadenceReadiness, m.LastCheckIn.At,
				fmt.Sprintf("agent %s is behind %s", m.AgentVersion, card.NewestAgentVersion))
		}
		var oldest *time.Time
		for _, u := range m.PendingUpdates {
			if u.FirstSeen != nil && (oldest == nil || u.FirstSeen.Before(*oldest)) {
				oldest = u.FirstSeen
			}
		}
		switch n := len(m.PendingUpdates); {
		case n > r.policy.MaxPendingUpdates:
			add(wire.AlertUpdates, wire.CadenceReadiness, m.LastCheckIn.At,
				fmt.Sprintf("%d pending updates (limit %d)", n, r.policy.MaxPendingUpdates))
		case oldest != nil && now.Sub(*oldest) > r.policy.MaxPendingAge:
			add(wire.AlertUpdates, wire.CadenceReadiness, oldest.Add(r.policy.MaxPendingAge),
				fmt.Sprintf("an update pending since %s (limit %s)", oldest.UTC().Format(time.DateOnly), r.policy.MaxPendingAge))
		}
	}
	return out
}

// alerter keeps the open alerts and announces changes.
type alerter struct {
	b *Broker

	mu   sync.Mutex
	open map[string]wire.Alert

	hook chan wire.AlertEvent
}

func newAlerter(b *Broker) *alerter {
	return &alerter{b: b, open: map[string]wire.Alert{}, hook: make(chan wire.AlertEvent, 1024)}
}

func (a *alerter) rules() alertRules {
	c := a.b.cfg
	p := c.Readiness.Resolved()
	return alertRules{offline: c.AlertOffline, overdueIntervals: c.AlertOverdueIntervals, neverCheckedIn: c.AlertNeverCheckedIn, policy: p}
}

// leads reports whether this broker evaluates alerts for the cluster.
func (a *alerter) leads() bool {
	b := a.b
	if b.cluster == nil {
		return true
	}
	for _, m := range b.cluster.Members() {
		if m.State == "alive" && m.Name < b.cluster.LocalName() {
			return false
		}
	}
	return true
}

// evaluate updates the open alerts at now and announces the changes.
// Every broker evaluates, so meshctl alerts answers anywhere; only the
// leader posts to the webhook, so each change is posted once.
func (a *alerter) evaluate(now time.Time) {
	b := a.b
	cur := evaluateAlerts(b.store.Machines(), func(m *store.Machine) wire.Reachability { return b.reach(m) }, now, a.rules())
	a.mu.Lock()
	var events []wire.AlertEvent
	for id, al := range cur {
		if old, ok := a.open[id]; ok {
			al.Since = old.Since // keep the first time it was seen
			cur[id] = al
			continue
		}
		events = append(events, wire.AlertEvent{Event: "opened", Alert: al})
	}
	for id, al := range a.open {
		if _, ok := cur[id]; !ok {
			t := now.UTC()
			al.Resolved = &t
			events = append(events, wire.AlertEvent{Event: "resolved", Alert: al})
		}
	}
	a.open = cur
	a.mu.Unlock()
	for _, e := range events {
		e.Broker = b.cfg.Name
		b.log.Info("alert "+e.Event, "machine", e.Alert.Machine, "kind", e.Alert.Kind, "cadence", e.Alert.Cadence, "detail", e.Alert.Detail)
		if b.cfg.AlertWebhook != "" && a.leads() {
			select {
			case a.hook <- e:
			default:
				b.log.Warn("alert webhook queue full; change not posted", "machine", e.Alert.Machine, "kind", e.Alert.Kind)
			}
		}
	}
}

// list returns the open alerts t may see, readiness first as queues are.
func (a *alerter) list(t *wire.Technician) []wire.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []wire.Alert{}
	for _, al := range a.open {
		if visible(t, al.Client) {
			out = append(out, al)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Cadence != out[j].Cadence {
			return out[i].Cadence == wire.CadenceReadiness
		}
		if out[i].Machine != out[j].Machine {
			return out[i].Machine < out[j].Machine
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// run evaluates every AlertEvery until ctx ends.
func (a *alerter) run(ctx context.Context) {
	t := time.NewTicker(a.b.cfg.AlertEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.evaluate(a.b.cfg.Now())
		}
	}
}

// post delivers webhook events in order, each retried with backoff (1 s
// doubling, 5 attempts) before it is given up and logged.
func (a *alerter) post(ctx context.Context) {
	client := &http.Client{Timeout: 10 * time.Second}
	for {
		var e wire.AlertEvent
		select {
		case <-ctx.Done():
			return
		case e = <-a.hook:
		}
		body, _ := json.Marshal(e)
		wait := time.Second
		for attempt := 1; ; attempt++ {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.b.cfg.AlertWebhook, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode < 300 {
					break
				}
				err = fmt.Errorf("HTTP %s", resp.Status)
			}
			if attempt == 5 || ctx.Err() != nil {
				a.b.log.Warn("alert webhook gave up", "machine", e.Alert.Machine, "kind", e.Alert.Kind, "event", e.Event, "err", err)
				break
			}
			a.b.log.Info("alert webhook failed; retrying", "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait *= 2
		}
	}
}
