package queue

import (
	"strings"
	"testing"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestCancelRolloutJob: only an admin cancels a rollout's update job
// alone; a technician is told to pause or abort the rollout.
func TestCancelRolloutJob(t *testing.T) {
	r := newRig(t)
	const id = "abcdef0200000000000000000000000a"
	j := store.JobRecord{ID: id, Machine: "id-acme-web", Client: "acme", Name: "web", Mode: wire.ModeElevated, CreatedBy: "admin",
		CreatedAt: now, Expires: now.Add(3600e9), Update: &store.JobUpdate{Version: "0.3.0", Rollout: "3f9a0c1b2d4e", HealthWindowSec: 600}}
	if err := r.st.CreateJobs([]store.JobRecord{j}); err != nil {
		t.Fatal(err)
	}
	tech := &wire.Technician{Name: "alice", Clients: []string{"acme"}, Modes: []string{wire.ModeElevated}}
	_, werr := r.q.Cancel(tech, &wire.JobArgs{ID: id})
	if werr == nil || werr.Code != wire.CodeForbidden || !strings.Contains(werr.Message, "belongs to rollout 3f9a0c1b2d4e: pause or abort the rollout") {
		t.Fatalf("a technician's cancel: %v", werr)
	}
	if got, werr := r.q.Cancel(admin, &wire.JobArgs{ID: id}); werr != nil || got.State != store.JobCancelled {
		t.Errorf("an admin's cancel: %+v, %v", got, werr)
	}
}

// TestUpdatePlaces: no more than maxUpdates update jobs are in flight
// on one broker; an update job over the limit waits without holding its
// machine's later jobs, and is sent once a place is free.
func TestUpdatePlaces(t *testing.T) {
	r := newUpdateRig(t, staged)
	for range maxUpdates {
		if !r.q.takeUpdate() {
			t.Fatal("a place below the limit was refused")
		}
	}
	j := r.addJob(t, updateID, "", now)
	if !r.q.dispatch(t.Context(), j) {
		t.Error("an update job over the limit held its machine's later jobs")
	}
	if got := r.job(t, updateID); got.State != store.JobQueued || len(r.agent.sent()) != 0 {
		t.Fatalf("over the limit: %s, %d sent", got.State, len(r.agent.sent()))
	}
	r.q.dropUpdate()
	if !r.q.dispatch(t.Context(), j) || r.job(t, updateID).State != store.JobDone {
		t.Errorf("with a place free: %s", r.job(t, updateID).State)
	}
	if r.q.updates != maxUpdates-1 {
		t.Errorf("%d places taken after the job, want %d", r.q.updates, maxUpdates-1)
	}
}
