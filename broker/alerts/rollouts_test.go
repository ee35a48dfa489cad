package alerts_test

import (
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// pausedRollout is a rollout of acme that failures paused.
func pausedRollout(id string) store.RolloutRecord {
	return store.RolloutRecord{ID: id, Version: "0.3.0", Clients: []string{"acme"}, CanaryPct: 25, HealthWindowSec: 900,
		MaxParallel: 50, FailPct: 10, State: wire.RolloutPaused, PausedAt: now, CreatedBy: "admin", CreatedAt: now, Home: "eu-1",
		PausedReason: "canary acme/pc-3 rolled-back: exited with status 2 three times at start", Canary: []string{"id-pc-3"},
		Rest: []string{"id-pc-4"}, Changed: now}
}

func TestRolloutAlerts(t *testing.T) {
	byAdmin := pausedRollout("aaaaaaaaaaaa")
	byAdmin.PausedBy = "admin"
	all := pausedRollout("bbbbbbbbbbbb")
	all.Clients, all.All = nil, true
	running := pausedRollout("cccccccccccc")
	running.State = wire.RolloutRolling
	out := map[string]wire.Alert{}
	alerts.RolloutAlerts([]store.RolloutRecord{pausedRollout("3f9a0c1b2d4e"), byAdmin, all, running}, out)
	if len(out) != 2 {
		t.Fatalf("alerts %v; want the two rollouts failures paused", out)
	}
	a := out["rollout/3f9a0c1b2d4e"]
	if a.Kind != wire.AlertRolloutPaused || a.Cadence != wire.CadenceReadiness || a.Machine != "" || a.Client != "acme" ||
		!a.Since.Equal(now) || a.Detail != "rollout 3f9a0c1b2d4e of 0.3.0 paused: canary acme/pc-3 rolled-back: exited with status 2 three times at start" {
		t.Errorf("alert %+v", a)
	}
	if a := out["rollout/bbbbbbbbbbbb"]; a.Client != "" {
		t.Errorf("a fleet-wide rollout's alert names client %q", a.Client)
	}
}

// TestRolloutAlertOnKick: on a real store, a rollout paused by failures
// is posted as soon as alerts are kicked, not at the next cadence, and
// resolved once it is resumed; acme's technician lists it, another
// client's does not.
func TestRolloutAlertOnKick(t *testing.T) {
	st := fleettest.Open(t)
	h := newHook(t)
	a := alerts.New(alerts.Config{Every: time.Hour, Webhook: h.url, Name: "eu-1", Now: func() time.Time { return now }}, st, offline{}, nil)
	run(t, a)
	if err := st.CreateRollout(pausedRollout("3f9a0c1b2d4e")); err != nil {
		t.Fatal(err)
	}
	a.Kick()
	if e := h.next(t); e.Event != "opened" || e.Alert.ID != "rollout/3f9a0c1b2d4e" {
		t.Fatalf("event %+v", e)
	}
	if got := a.List(&wire.Technician{Name: "alice", Clients: []string{"acme"}}); len(got) != 1 {
		t.Errorf("acme's technician lists %v", got)
	}
	if got := a.List(&wire.Technician{Name: "bob", Clients: []string{"globex"}}); len(got) != 0 {
		t.Errorf("globex's technician lists %v", got)
	}
	if _, err := st.UpdateRollout("3f9a0c1b2d4e", func(r *store.RolloutRecord) error {
		r.State, r.PausedReason = wire.RolloutCanary, ""
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a.Kick()
	if e := h.next(t); e.Event != "resolved" || e.Alert.ID != "rollout/3f9a0c1b2d4e" {
		t.Errorf("event after the resume %+v", e)
	}
}
