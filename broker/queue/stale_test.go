package queue

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// waitUntil polls cond every few milliseconds and reports whether it
// became true within ten seconds.
func waitUntil(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func (q *Queue) isBusy(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy[id]
}

// TestRunDoesNotResendFinishedJob: the dispatcher takes a snapshot while
// a job is running here (its agent has not answered yet); the answer
// comes and the machine's claim is let go before the dispatcher claims
// the machine from that snapshot. The agent is sent the job once: the
// snapshot's copy, running, is not sent again.
func TestRunDoesNotResendFinishedJob(t *testing.T) {
	release := make(chan struct{})
	var answered atomic.Int32
	r := newUpdateRig(t, func(*wire.JobRequest) wire.JobReply {
		if answered.Add(1) == 1 {
			<-release // the first answer waits until the test lets it go
		}
		return wire.JobReply{Output: "hi"}
	})
	r.addJob(t, scriptID, "echo hi", now)

	var (
		rounds  atomic.Int32 // snapshots taken
		raced   atomic.Int32 // the round whose snapshot went stale, once it has
		raceOne sync.Once
	)
	r.q.testOnlyOpened = func(byMachine map[string][]store.JobRecord) {
		n := rounds.Add(1)
		js := byMachine[r.id]
		if len(js) != 1 || js[0].State != store.JobRunning {
			return
		}
		raceOne.Do(func() {
			// Between this snapshot and the claim: the agent answers,
			// the job ends done and the round that sent it lets the
			// machine go.
			close(release)
			if !waitUntil(func() bool { return !r.q.isBusy(r.id) }) {
				t.Error("the round that sent the job never let the machine go")
			}
			if js, err := r.st.JobsByID([]string{scriptID}); err != nil || len(js) != 1 || js[0].State != store.JobDone {
				t.Errorf("job %+v, %v after the answer, want done", js, err)
			}
			raced.Store(n)
		})
	}

	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.q.Run(ctx)
	}()
	defer func() { cancel(); <-stopped }()

	r.q.Kick()
	if !waitUntil(func() bool { return len(r.agent.sent()) == 1 }) {
		t.Fatal("the job was never sent")
	}
	r.q.Kick() // a snapshot while the job runs
	if !waitUntil(func() bool { return raced.Load() != 0 }) {
		t.Fatal("no snapshot was taken while the job ran")
	}
	// A later round began, so the stale round's claims are made; wait
	// for the machine's dispatch from it, if any, to end.
	r.q.Kick()
	if !waitUntil(func() bool { return rounds.Load() > raced.Load() && !r.q.isBusy(r.id) }) {
		t.Fatal("the dispatcher did not go round again")
	}
	cancel()
	<-stopped
	if reqs := r.agent.sent(); len(reqs) != 1 {
		t.Errorf("the agent was sent the job %d times, want once", len(reqs))
	}
	if got := r.job(t, scriptID); got.State != store.JobDone || got.Result.Output != "hi" {
		t.Errorf("job %s %+v", got.State, got.Result)
	}
}

// TestStaleSnapshot: a job that changes between the snapshot and the
// claim of its machine is neither sent, nor asked about, nor shown to the
// rollout's gate from the snapshot's copy.
func TestStaleSnapshot(t *testing.T) {
	running := func(broker string) func(*store.JobRecord) error {
		return func(j *store.JobRecord) error {
			j.State, j.Broker, j.Result = store.JobRunning, broker, &store.JobResult{Session: "s-" + broker}
			return nil
		}
	}
	tests := []struct {
		desc   string
		script string                       // "" for an update job
		before func(*store.JobRecord) error // the job as the snapshot sees it; nil: queued
		change func(t *testing.T, r *updateRig, id string)
	}{
		{"update job cancelled by an admin", "", nil, func(t *testing.T, r *updateRig, id string) {
			if _, werr := r.q.Cancel(admin, &wire.JobArgs{ID: id}); werr != nil {
				t.Fatal(werr)
			}
		}},
		{"update job taken by another broker", "", nil, func(t *testing.T, r *updateRig, id string) {
			if _, err := r.st.UpdateJob(id, running("eu-2")); err != nil {
				t.Fatal(err)
			}
		}},
		{"script job cancelled with its machine", "echo hi", nil, func(t *testing.T, r *updateRig, id string) {
			if n, err := r.q.CancelMachine(r.id, "admin"); err != nil || n != 1 {
				t.Fatalf("CancelMachine = %d, %v", n, err)
			}
		}},
		{"running job finished by another broker", "echo hi", running("eu-2"), func(t *testing.T, r *updateRig, id string) {
			if _, err := r.st.UpdateJob(id, func(j *store.JobRecord) error {
				j.State, j.Result = store.JobDone, &store.JobResult{Session: "s-eu-2", Output: "hi", Finished: now}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}},
		{"cancellation closed by the agent's word", "echo hi", func(j *store.JobRecord) error {
			j.State, j.Result = store.JobCancelled, &store.JobResult{Session: "s-1", Error: "cancelled by alice"}
			return nil
		}, func(t *testing.T, r *updateRig, id string) {
			r.q.standCancelled(&store.JobRecord{ID: id})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := newUpdateRig(t, staged)
			id := updateID
			if tc.script != "" {
				id = scriptID
			}
			r.addJob(t, id, tc.script, now)
			if tc.before != nil {
				if _, err := r.st.UpdateJob(id, tc.before); err != nil {
					t.Fatal(err)
				}
			}
			snap, err := r.q.open()
			if err != nil || len(snap[r.id]) != 1 {
				t.Fatalf("snapshot %v, %v", snap, err)
			}
			tc.change(t, r, id)
			want := r.job(t, id)

			// What Run does next: claim the machine, run its jobs.
			slots := make(chan struct{}, 1)
			if !r.q.claimMachine(r.id, slots) {
				t.Fatal("machine not claimed")
			}
			r.q.runMachine(t.Context(), r.id, snap[r.id], slots)

			for _, req := range r.agent.sent() {
				t.Errorf("sent job %s (query only: %v) from a stale snapshot", req.Job, req.QueryOnly)
			}
			if r.gate.asked != 0 {
				t.Errorf("the gate was asked %d times about a stale copy", r.gate.asked)
			}
			if got := r.job(t, id); got.State != want.State || got.Stamp != want.Stamp {
				t.Errorf("job changed by the stale round: %+v, was %+v", got, want)
			}
			if r.q.isBusy(r.id) || len(slots) != 0 {
				t.Error("the claim was not let go")
			}
			select {
			case <-r.q.wake:
			default:
				t.Error("the dispatcher was not asked to look again")
			}
		})
	}
}

// TestFreshSnapshotSent: a job unchanged since the snapshot is sent, as
// stored after the claim.
func TestFreshSnapshotSent(t *testing.T) {
	r := newUpdateRig(t, staged)
	r.addJob(t, updateID, "", now)
	snap, err := r.q.open()
	if err != nil {
		t.Fatal(err)
	}
	slots := make(chan struct{}, 1)
	if !r.q.claimMachine(r.id, slots) {
		t.Fatal("machine not claimed")
	}
	r.q.runMachine(t.Context(), r.id, snap[r.id], slots)
	if reqs := r.agent.sent(); len(reqs) != 1 || reqs[0].Job != updateID || reqs[0].Update == nil {
		t.Fatalf("sent %+v; want the update job once", reqs)
	}
	if got := r.job(t, updateID); got.State != store.JobDone || r.gate.asked != 1 {
		t.Errorf("job %s, gate asked %d times", got.State, r.gate.asked)
	}
	select {
	case <-r.q.wake:
		t.Error("a round with nothing stale asked for another")
	default:
	}
}
