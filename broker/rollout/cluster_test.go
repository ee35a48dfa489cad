package rollout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// pull copies what src holds and dst lacks into dst, as anti-entropy
// does between two brokers.
func pull(t *testing.T, dst, src *store.Store) {
	t.Helper()
	for _, b := range src.DiffBuckets(dst.Digest()) {
		keys := dst.Want(src.BucketVersions(b))
		if len(keys) == 0 {
			continue
		}
		recs, err := src.Export(keys)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dst.Import(recs); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReportFromAnotherBroker: the agent's rollback report reaches a
// broker that is not the driver's; that broker copies it into the
// update job, and the driver, which learns of it through the job, pauses
// with the agent's reason.
func TestReportFromAnotherBroker(t *testing.T) {
	r := newRig(t) // broker eu-1, the driver
	fourMachines(r)
	other := fleettest.Open(t) // broker eu-2: the canary's bridge is there
	alive := []cluster.Member{{Name: "eu-1", State: cluster.StateAlive}, {Name: "eu-2", State: cluster.StateAlive}}
	roomB := New(Config{Name: "eu-2", Now: r.now}, Deps{Store: other, Releases: r.rel, Reach: r.reach,
		Members: &members{local: "eu-2", list: alive}, Audit: audit.New(other, nil, nil), Replicated: func(...store.Key) {}})
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25})
	canary := r.rolloutRecord(ro.ID).Canary[0]
	r.room.tick()
	pull(t, other, r.st)

	// eu-2's queue sends the job; the agent takes it, its new binary
	// fails, and it checks in with the old one, to eu-2.
	roomB.tick()
	j, found := jobOf(t, other, JobID(ro.ID, canary))
	if run, cancel := roomB.Admit(&j); !found || !run || cancel != "" {
		t.Fatalf("eu-2's gate: run %v, cancel %q", run, cancel)
	}
	for _, state := range []string{store.JobRunning, store.JobDone} {
		if _, err := other.UpdateJob(j.ID, func(j *store.JobRecord) error {
			j.State, j.Result = state, &store.JobResult{Output: "0.3.0 staged; restarting into it", Finished: r.now()}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	snap := fleettest.Snapshot(canary)
	snap.AgentVersion = "0.2.0"
	ci := &wire.CheckIn{MachineID: canary, Seq: 2, Reason: wire.ReasonRolledBack, Snapshot: snap,
		Update: &wire.UpdateReport{From: "0.2.0", To: "0.3.0", Rollout: ro.ID, Outcome: wire.ReasonRolledBack,
			Detail: "rolled back from 0.3.0: exited with status 2 three times at start", At: r.now()}}
	if _, err := other.CheckIn(ci, r.now()); err != nil {
		t.Fatal(err)
	}

	// The report travels with the machine record: the driver, which did
	// not take the check-in, sees the rollback at its first pull.
	pull(t, r.st, other)
	r.room.tick()
	if _, steps := r.status(ro.ID); countOf(steps, wire.StepRolledBack) != 1 {
		t.Fatalf("steps once eu-1 pulled the machine: %v", steps)
	}
	roomB.tick() // also copies the report into the job, for brokers of before
	pull(t, r.st, other)
	r.room.tick()
	rec := r.rolloutRecord(ro.ID)
	if rec.State != wire.RolloutPaused || !strings.HasSuffix(rec.PausedReason, "exited with status 2 three times at start") {
		t.Errorf("driver: %s (%s)", rec.State, rec.PausedReason)
	}
	// The driver's card of the canary tells the rollback too, though the
	// check-in that reported it went to eu-2.
	m, _ := r.st.Machine(canary)
	c := readiness.Card(&m, wire.Reachability{}, "", r.now(), readiness.Policy{})
	r.room.Annotate(&c)
	if u := c.Readiness.LastUpdate; u == nil || u.Outcome != wire.ReasonRolledBack || u.Rollout != ro.ID {
		t.Errorf("eu-1's card: last update %+v", u)
	}
}

func jobOf(t *testing.T, st *store.Store, id string) (store.JobRecord, bool) {
	t.Helper()
	js, err := st.Jobs(func(j *store.JobRecord) bool { return j.ID == id })
	if err != nil || len(js) != 1 {
		return store.JobRecord{}, false
	}
	return js[0], true
}

// TestAnnotate: a machine's card names the rollout it is in, and the
// agent-behind reason says what that rollout does for it.
func TestAnnotate(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ahead := r.machine("acme", "e", "0.3.0") // makes the others behind
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25})
	canary := r.rolloutRecord(ro.ID).Canary[0]
	r.behave[canary] = broken
	r.settle() // paused on the canary
	card := func(id string) wire.Card {
		m, _ := r.st.Machine(id)
		c := readiness.Card(&m, wire.Reachability{}, "0.3.0", r.now(), readiness.Policy{})
		r.room.Annotate(&c)
		return c
	}
	c := card(r.rolloutRecord(ro.ID).Rest[0])
	if c.Readiness.Rollout == nil || c.Readiness.Rollout.ID != ro.ID || c.Readiness.Rollout.Step != wire.StepWaiting ||
		!contains(c.Readiness.Reasons, "agent 0.2.0 is behind 0.3.0; rollout "+ro.ID+" paused before updating it (wave 1)") {
		t.Errorf("wave 1 machine: %+v %q", c.Readiness.Rollout, c.Readiness.Reasons)
	}
	c = card(canary)
	if c.Readiness.Rollout == nil || c.Readiness.Rollout.Step != wire.StepRolledBack || c.Readiness.LastUpdate == nil ||
		!contains(c.Readiness.Reasons, "rolled-back on it: rolled back from 0.3.0") {
		t.Errorf("canary: %+v %q", c.Readiness.Rollout, c.Readiness.Reasons)
	}
	if c := card(ahead); c.Readiness.Rollout != nil {
		t.Errorf("a machine already on the version: %+v", c.Readiness.Rollout)
	}
}

func contains(reasons []string, part string) bool {
	for _, s := range reasons {
		if strings.Contains(s, part) {
			return true
		}
	}
	return false
}

// TestRunKick: Run drives when kicked and returns when its context
// ends.
func TestRunKick(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	room := New(Config{Name: "eu-1", Every: time.Hour, Now: r.now}, r.room.deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		room.Run(ctx)
	}()
	r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25})
	room.Kick()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.jobs(nil)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no job queued within 10s of a kick")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
