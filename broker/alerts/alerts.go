// Package alerts opens and resolves the broker's alerts, on two cadences
// as the console keeps the layers apart: reachability alerts watch the
// live overlay (a machine offline longer than the threshold of its
// reason: lost, stopped, shut down, asleep or quiet), readiness
// alerts the stored state (check-ins overdue, an agent behind, pending
// updates piling up or ageing, a machine enrolled that never checked in,
// a rollout that failures paused). An agent behind opens no alert while a
// running rollout is bringing it level (see rollouts.go).
// They open and resolve by themselves at each evaluation; a webhook, if
// set, gets every change as JSON.
//
// Every broker of a cluster evaluates them (so any broker lists them), and
// one posts to the webhook: the alive member with the smallest name, so a
// change is posted once. Alerts live in memory: after a restart, or when
// another broker takes over the posting, they are worked out again from
// the stored state and the overlay, and open alerts may be posted again.
package alerts

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Config holds the thresholds. Zero values mean the documented defaults.
type Config struct {
	// Every is how often alerts are evaluated. Zero means 30 s.
	Every time.Duration
	// Offline opens a reachability alert for a machine lost (offline
	// with no notice, or for a reason no broker knows) longer than this.
	// Zero means 15 minutes.
	Offline time.Duration
	// Away holds the thresholds for machines that said why they went
	// (stopped, shut down, asleep, quiet). Zero fields mean their
	// documented defaults: 1 h, 24 h, never, never.
	Away Away
	// OverdueIntervals opens a readiness alert for a machine with no
	// check-in for this many of its check-in intervals. Zero means 3.
	OverdueIntervals int
	// NeverCheckedIn opens a readiness alert for a machine enrolled this
	// long ago that never checked in. Zero means 1 hour.
	NeverCheckedIn time.Duration
	// Policy holds the readiness thresholds (agent behind, updates).
	Policy readiness.Policy
	// Steps, if set, tells where each machine stands in the rollouts
	// still moving (the rollout room): an agent behind that a running
	// rollout is updating opens no alert until the rollout pauses, ends
	// or gives up on it. It is asked only with a Store that is also a
	// RolloutStore. Nil withholds no alert.
	Steps Steps
	// Webhook, if set, receives every alert change as a JSON POST
	// (wire.AlertEvent), retried with backoff.
	Webhook string
	// Name is this broker's name, in webhook events.
	Name string
	// Logger receives the logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Every <= 0 {
		c.Every = 30 * time.Second
	}
	if c.Offline <= 0 {
		c.Offline = defaultLost
	}
	if c.OverdueIntervals <= 0 {
		c.OverdueIntervals = 3
	}
	if c.NeverCheckedIn <= 0 {
		c.NeverCheckedIn = time.Hour
	}
	c.Policy = c.Policy.Resolved()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Store is the stored state alerts are worked out from.
type Store interface {
	Machines() []store.Machine
}

// Reach is a machine's reachability now.
type Reach interface {
	Reach(m *store.Machine) wire.Reachability
}

// Members lists the brokers of the cluster, to pick the one that posts.
type Members interface {
	Members() []cluster.Member
	LocalName() string
}

// Alerts keeps the open alerts and announces changes.
type Alerts struct {
	cfg     Config
	store   Store
	reach   Reach
	members Members // nil when the broker runs alone
	hook    chan wire.AlertEvent
	wake    chan struct{}

	mu   sync.Mutex
	open map[string]wire.Alert // mu guards; by alert ID
}

// New returns the alerts of one broker. members is nil when the broker
// runs alone.
func New(cfg Config, st Store, reach Reach, members Members) *Alerts {
	cfg.setDefaults()
	return &Alerts{cfg: cfg, store: st, reach: reach, members: members,
		open: map[string]wire.Alert{}, hook: make(chan wire.AlertEvent, 1024), wake: make(chan struct{}, 1)}
}

// Kick asks for an evaluation now: a rollout paused or resumed, whose
// alert should not wait for the next cadence.
func (a *Alerts) Kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run evaluates every Config.Every, and at once when kicked, and posts
// changes to the webhook, until ctx ends.
func (a *Alerts) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.post(ctx)
	}()
	t := time.NewTicker(a.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case <-t.C:
		case <-a.wake:
		}
		a.evaluate(a.cfg.Now())
	}
}

// List returns the open alerts t may see, readiness first as queues are.
func (a *Alerts) List(t *wire.Technician) []wire.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []wire.Alert{}
	for _, al := range a.open {
		if scope.Visible(t, al.Client) {
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

// leads reports whether this broker posts alerts for the cluster.
func (a *Alerts) leads() bool {
	if a.members == nil {
		return true
	}
	for _, m := range a.members.Members() {
		if m.State == cluster.StateAlive && m.Name < a.members.LocalName() {
			return false
		}
	}
	return true
}

// evaluate updates the open alerts at now and announces the changes.
func (a *Alerts) evaluate(now time.Time) {
	ro := a.rollouts()
	cur := Evaluate(a.store.Machines(), a.reach.Reach, ro, now, &a.cfg)
	RolloutAlerts(ro.Paused(), cur)
	a.mu.Lock()
	events := a.changesLocked(cur, now)
	a.open = cur
	a.mu.Unlock()
	for _, e := range events {
		e.Broker = a.cfg.Name
		a.cfg.Logger.Info("alert "+e.Event, "machine", e.Alert.Machine, "kind", e.Alert.Kind, "cadence", e.Alert.Cadence, "detail", e.Alert.Detail)
		if a.cfg.Webhook != "" && a.leads() {
			select {
			case a.hook <- e:
			default:
				a.cfg.Logger.Warn("alert webhook queue full; change not posted", "machine", e.Alert.Machine, "kind", e.Alert.Kind)
			}
		}
	}
}

// changesLocked lists what opened and resolved between the open alerts
// and cur, keeping the first time each alert was seen.
func (a *Alerts) changesLocked(cur map[string]wire.Alert, now time.Time) []wire.AlertEvent {
	var events []wire.AlertEvent
	for id, al := range cur {
		if old, ok := a.open[id]; ok {
			al.Since = old.Since
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
	return events
}
