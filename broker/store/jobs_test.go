package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func openNamed(t *testing.T, broker string) *Store {
	t.Helper()
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), broker+".db"), Broker: broker})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func exchange(t *testing.T, from, to *Store, ids ...string) {
	t.Helper()
	var keys []Key
	for _, id := range ids {
		keys = append(keys, Key{KindJob, id})
	}
	recs, err := from.Export(keys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := to.Import(recs); err != nil {
		t.Fatal(err)
	}
}

func jobState(t *testing.T, s *Store, id string) string {
	t.Helper()
	js, err := s.Jobs(func(j *JobRecord) bool { return j.ID == id })
	if err != nil || len(js) != 1 {
		t.Fatalf("job %s: %v %v", id, js, err)
	}
	return js[0].State
}

// TestJobsReplicate: jobs travel between brokers like every record and
// merge to the furthest state, whichever way and how often they travel: a
// cancellation that raced with a run never hides the run's result.
func TestJobsReplicate(t *testing.T) {
	a, b := openNamed(t, "a"), openNamed(t, "b")
	now := time.Now().UTC()
	var ids []string
	var js []JobRecord
	for i := range 3 {
		id := fmt.Sprintf("%032x", i+1)
		ids = append(ids, id)
		js = append(js, JobRecord{ID: id, Machine: "m1", Client: "acme", Name: "pc", Script: "echo hi", Mode: "interactive",
			CreatedBy: "alice", CreatedAt: now, Expires: now.Add(time.Hour)})
	}
	if err := a.CreateJobs(js); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateJobs(js[:1]); err == nil {
		t.Fatal("a job created twice")
	}
	exchange(t, a, b, ids...)
	if got := jobState(t, b, ids[0]); got != JobQueued {
		t.Fatalf("replicated job is %s", got)
	}
	// a runs job 0 to the end while b cancels it, not knowing.
	a.UpdateJob(ids[0], func(j *JobRecord) error { j.State = JobRunning; return nil })
	b.UpdateJob(ids[0], func(j *JobRecord) error { j.State = JobCancelled; return nil })
	a.UpdateJob(ids[0], func(j *JobRecord) error {
		j.State, j.Result = JobDone, &JobResult{ExitCode: 0, Output: "hi\n", Finished: now}
		return nil
	})
	exchange(t, b, a, ids[0])
	exchange(t, a, b, ids[0])
	exchange(t, b, a, ids[0])
	for _, s := range []*Store{a, b} {
		if got := jobState(t, s, ids[0]); got != JobDone {
			t.Errorf("after the race: %s, want done", got)
		}
	}
	// A state never goes back locally either.
	if _, err := a.UpdateJob(ids[0], func(j *JobRecord) error { j.State = JobQueued; return nil }); err == nil {
		t.Error("a done job went back to queued")
	}
	// Running beats queued from a broker that missed the start.
	a.UpdateJob(ids[1], func(j *JobRecord) error { j.State = JobRunning; j.Broker = "a"; return nil })
	exchange(t, b, a, ids[1])
	exchange(t, a, b, ids[1])
	if got := jobState(t, b, ids[1]); got != JobRunning {
		t.Errorf("b sees job 1 %s, want running", got)
	}
	// The digests agree once both hold the same jobs.
	exchange(t, a, b, ids...)
	exchange(t, b, a, ids...)
	if da, db := a.Digest(), b.Digest(); da != db {
		t.Error("digests differ after the exchange")
	}
}
