package alerts_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/rollout"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

var _ alerts.Steps = (*rollout.Room)(nil)

// Rollout IDs of these tests.
const (
	rRunning  = "a1a1a1a1a1a1"
	rFailures = "b2b2b2b2b2b2"
	rByAdmin  = "c3c3c3c3c3c3"
	rAborted  = "d4d4d4d4d4d4"
	rOlder    = "e5e5e5e5e5e5"
	rGaveUp   = "f6f6f6f6f6f6"
)

const pauseReason = "canary acme/acme-9 rolled-back: exited with status 2 three times at start"

// startedRollout is the record of a rollout of version to acme's
// machines ids, started just now as the room would (its canary wave),
// in state.
func startedRollout(id, version, state string, ids ...string) store.RolloutRecord {
	at := time.Now().UTC()
	r := store.RolloutRecord{ID: id, Version: version, Clients: []string{"acme"}, CanaryPct: 100, HealthWindowSec: 900,
		MaxParallel: 50, FailPct: 10, State: state, CreatedBy: "admin", CreatedAt: at, Home: "eu-1", Canary: ids,
		Changed: at}
	r.WaveStarted[0] = at
	switch state {
	case wire.RolloutPaused:
		r.PausedAt, r.PausedReason = at, pauseReason
	case wire.RolloutAborted:
		r.Ended, r.PausedReason = at, "aborted by admin"
	}
	return r
}

// lookOnce runs a rollout room on st that looks at the rollouts once,
// now, and not again before the test ends, and returns it once it has
// published what it saw: every later change of a rollout's state reaches
// alerts only through the store. ready tells from the rollout the room
// puts on the card of machine id (behind 0.2.0 for 0.3.0) that the look
// is done.
func lookOnce(t *testing.T, st *store.Store, id string, ready func(ref *wire.RolloutRef) bool) *rollout.Room {
	t.Helper()
	room := rollout.New(rollout.Config{Name: "eu-1", Every: time.Hour},
		rollout.Deps{Store: st, Releases: st, Reach: offline{}, Audit: audit.New(st, nil, nil), Replicated: func(...store.Key) {}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		room.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	room.Kick()
	waitFor(t, "the room's look at the rollouts", func() bool {
		c := wire.Card{ID: id, Readiness: wire.Readiness{AgentBehind: true, AgentVersion: "0.2.0", NewestAgentVersion: "0.3.0"}}
		room.Annotate(&c)
		return c.Readiness.Rollout != nil && ready(c.Readiness.Rollout)
	})
	return room
}

// failJob stores machine id's update job in rollout r as sent and
// failed with exit status 3.
func failJob(t *testing.T, st *store.Store, r *store.RolloutRecord, id string) {
	t.Helper()
	at := time.Now().UTC()
	j := store.JobRecord{ID: rollout.JobID(r.ID, id), Machine: id, Client: "acme", Name: id, Mode: wire.ModeElevated,
		CreatedBy: "admin", CreatedAt: at, Expires: at.Add(rollout.Lifetime), PlannedAgent: "0.2.0",
		Update: &store.JobUpdate{Version: r.Version, Rollout: r.ID, HealthWindowSec: r.HealthWindowSec}}
	if _, err := st.CreateNewJobs([]store.JobRecord{j}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateJobs([]string{j.ID}, func(j *store.JobRecord) error {
		j.State, j.Result = store.JobFailed, &store.JobResult{ExitCode: 3, Output: "installer: disk full\n", Finished: at}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestAgentBehindInRollout: on a real store, with a real rollout room,
// an agent behind that a running rollout is bringing level opens no
// alert; one whose rollout is paused, aborted, older than the newest
// agent or gave up on it opens its alert, naming the rollout and why
// while the rollout still holds it; machines no rollout holds (another
// client's, one enrolled after the rollout started) open theirs as
// before.
func TestAgentBehindInRollout(t *testing.T) {
	st := fleettest.Open(t)
	for _, m := range []struct{ id, client, version string }{
		{"acme-0", "acme", "0.3.0"}, {"acme-1", "acme", "0.2.0"}, {"acme-2", "acme", "0.2.0"}, {"acme-3", "acme", "0.2.0"},
		{"acme-4", "acme", "0.2.0"}, {"acme-5", "acme", "0.2.0"}, {"acme-6", "acme", "0.2.0"}, {"acme-7", "acme", "0.2.0"},
		{"globex-1", "globex", "0.2.0"}, {"globex-2", "globex", "0.3.0"},
	} {
		fleettest.Enrol(t, st, m.id, m.client, m.id, time.Now())
		checkInVersion(t, st, m.id, 1, m.version)
	}
	byAdmin := startedRollout(rByAdmin, "0.3.0", wire.RolloutPaused, "acme-3")
	byAdmin.PausedBy, byAdmin.PausedReason = "admin", "paused by admin"
	gaveUp := startedRollout(rGaveUp, "0.3.0", wire.RolloutCanary, "acme-6")
	for _, r := range []store.RolloutRecord{
		startedRollout(rRunning, "0.3.0", wire.RolloutCanary, "acme-1"),
		startedRollout(rFailures, "0.3.0", wire.RolloutPaused, "acme-2"),
		byAdmin,
		startedRollout(rAborted, "0.3.0", wire.RolloutAborted, "acme-4"),
		startedRollout(rOlder, "0.2.5", wire.RolloutCanary, "acme-5"),
		gaveUp,
	} {
		if err := st.CreateRollout(r); err != nil {
			t.Fatal(err)
		}
	}
	failJob(t, st, &gaveUp, "acme-6")
	room := lookOnce(t, st, "acme-6", func(ref *wire.RolloutRef) bool { return ref.Step == wire.StepFailed })

	ro, err := alerts.ReadRollouts(st, room)
	if err != nil {
		t.Fatal(err)
	}
	got := behindIn(st, ro)
	want := map[string]string{
		"acme/acme-2":     "agent 0.2.0 is behind 0.3.0; rollout " + rFailures + " paused: " + pauseReason,
		"acme/acme-3":     "agent 0.2.0 is behind 0.3.0; rollout " + rByAdmin + " paused by admin",
		"acme/acme-4":     "agent 0.2.0 is behind 0.3.0",
		"acme/acme-5":     "agent 0.2.0 is behind 0.3.0; rollout " + rOlder + " brings it only to 0.2.5",
		"acme/acme-6":     "agent 0.2.0 is behind 0.3.0; rollout " + rGaveUp + " failed on it: exit 3: installer: disk full",
		"acme/acme-7":     "agent 0.2.0 is behind 0.3.0",
		"globex/globex-1": "agent 0.2.0 is behind 0.3.0",
	}
	if !maps.Equal(got, want) {
		t.Errorf("agent-behind alerts\n got %v\nwant %v", got, want)
	}
	// The same store and room, without the rollouts: every behind agent
	// opens its alert, naming no rollout.
	plain := behindIn(st, nil)
	if len(plain) != 8 || plain["acme/acme-1"] != "agent 0.2.0 is behind 0.3.0" {
		t.Errorf("without rollouts, agent-behind alerts %v; want all eight behind agents", plain)
	}
}

// behindIn evaluates the alerts of st's machines now, knowing ro, and
// returns the details of the agent-behind alerts, by machine.
func behindIn(st *store.Store, ro *alerts.Rollouts) map[string]string {
	c := &alerts.Config{Offline: 15 * time.Minute, OverdueIntervals: 3, NeverCheckedIn: time.Hour}
	c.Policy = c.Policy.Resolved()
	out := map[string]string{}
	for _, a := range alerts.Evaluate(st.Machines(), offline{}.Reach, ro, time.Now(), c) {
		if a.Kind == wire.AlertAgentBehind {
			out[a.Machine] = a.Detail
		}
	}
	return out
}

// TestAgentBehindFollowsRollout: a broker's alerts, on a real store and
// room, as an admin works a rollout: nothing for the machine while the
// rollout runs; its alert opens, naming the rollout, as soon as the
// rollout pauses (kicked, before the room looks again); it resolves on
// the resume, and opens again, naming no rollout, on the abort.
func TestAgentBehindFollowsRollout(t *testing.T) {
	st := fleettest.Open(t)
	for _, m := range []struct{ id, version string }{{"acme-0", "0.3.0"}, {"acme-1", "0.2.0"}} {
		fleettest.Enrol(t, st, m.id, "acme", m.id, time.Now())
		checkInVersion(t, st, m.id, 1, m.version)
	}
	fleettest.Enrol(t, st, "acme-new", "acme", "acme-new", time.Now().Add(-2*time.Hour)) // never checks in
	if err := st.CreateRollout(startedRollout(rRunning, "0.3.0", wire.RolloutCanary, "acme-1")); err != nil {
		t.Fatal(err)
	}
	room := lookOnce(t, st, "acme-1", func(*wire.RolloutRef) bool { return true })
	h := newHook(t)
	a := alerts.New(alerts.Config{Every: time.Hour, Webhook: h.url, Name: "eu-1", Steps: room}, st, offline{}, nil)
	run(t, a)
	admin := &wire.Technician{Admin: true}
	a.Kick()
	if e := h.next(t); e.Event != "opened" || e.Alert.Kind != wire.AlertNeverCheckedIn {
		t.Fatalf("first event %+v; want acme-new's alert alone", e)
	}
	if got := a.List(admin); len(got) != 1 {
		t.Errorf("open alerts while the rollout runs: %+v; want acme-new's alone", got)
	}

	// kicked changes the rollout with f, kicks the alerts and returns
	// the n events posted, by alert ID.
	kicked := func(n int, f func(r *store.RolloutRecord)) map[string]wire.AlertEvent {
		t.Helper()
		if _, err := st.UpdateRollout(rRunning, func(r *store.RolloutRecord) error { f(r); return nil }); err != nil {
			t.Fatal(err)
		}
		a.Kick()
		out := map[string]wire.AlertEvent{}
		for range n {
			e := h.next(t)
			out[e.Alert.ID] = e
		}
		return out
	}
	behindID := "acme-1/" + wire.AlertAgentBehind
	events := kicked(2, func(r *store.RolloutRecord) {
		r.State, r.PausedAt, r.PausedReason = wire.RolloutPaused, time.Now().UTC(), pauseReason
	})
	if e := events[behindID]; e.Event != "opened" || e.Alert.Detail != "agent 0.2.0 is behind 0.3.0; rollout "+rRunning+" paused: "+pauseReason {
		t.Errorf("on the pause, acme-1's event %+v", e)
	}
	if e := events["rollout/"+rRunning]; e.Event != "opened" {
		t.Errorf("on the pause, the rollout's event %+v", e)
	}
	events = kicked(2, func(r *store.RolloutRecord) {
		r.State, r.PausedAt, r.PausedReason = wire.RolloutCanary, time.Time{}, ""
	})
	if e := events[behindID]; e.Event != "resolved" {
		t.Errorf("on the resume, acme-1's event %+v", e)
	}
	events = kicked(1, func(r *store.RolloutRecord) {
		r.State, r.Ended, r.PausedReason = wire.RolloutAborted, time.Now().UTC(), "aborted by admin"
	})
	if e := events[behindID]; e.Event != "opened" || e.Alert.Detail != "agent 0.2.0 is behind 0.3.0" {
		t.Errorf("on the abort, acme-1's event %+v", e)
	}
}
