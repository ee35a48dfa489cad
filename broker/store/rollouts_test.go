package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// testRollout is a valid rollout of 0.3.0 to two machines of acme.
func testRollout(id string) RolloutRecord {
	return RolloutRecord{ID: id, Version: "0.3.0", Clients: []string{"acme"}, CanaryPct: 50, HealthWindowSec: 900,
		MaxParallel: 50, FailPct: 10, State: wire.RolloutCanary, CreatedBy: "admin", CreatedAt: t0, Home: "eu-1",
		Canary: []string{"m1"}, Rest: []string{"m2"}, WaveStarted: [2]time.Time{t0}, Changed: t0}
}

func TestRolloutRecords(t *testing.T) {
	s, _ := newStore(t)
	if err := s.CreateRollout(testRollout("3f9a0c1b2d4e")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRollout(testRollout("3f9a0c1b2d4e")); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	r, found, err := s.Rollout("3f9a0c1b2d4e")
	if err != nil || !found || r.Version != "0.3.0" || len(r.Canary) != 1 || r.Stamp.Clock.IsZero() {
		t.Fatalf("Rollout = %+v, %v, %v", r, found, err)
	}
	if _, found, err := s.Rollout("000000000000"); found || err != nil {
		t.Errorf("unknown rollout: found %v, %v", found, err)
	}
	out, err := s.UpdateRollout(r.ID, func(r *RolloutRecord) error {
		r.State, r.PausedReason = wire.RolloutPaused, "canary acme/pc-3 rolled back"
		return nil
	})
	if err != nil || out.State != wire.RolloutPaused || out.Clock.Compare(r.Clock) <= 0 {
		t.Fatalf("UpdateRollout = %+v, %v", out, err)
	}
	if _, err := s.UpdateRollout(r.ID, func(*RolloutRecord) error { return errors.New("no") }); err == nil {
		t.Error("a refusal by f was not returned")
	}
	if _, err := s.UpdateRollout("000000000000", func(*RolloutRecord) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of an unknown rollout: %v", err)
	}
	// An ended rollout stays ended.
	if _, err := s.UpdateRollout(r.ID, func(r *RolloutRecord) error { r.State = wire.RolloutAborted; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateRollout(r.ID, func(r *RolloutRecord) error { r.State = wire.RolloutRolling; return nil }); err == nil {
		t.Error("an aborted rollout became active again")
	}
	second := testRollout("aaaaaaaaaaaa")
	second.CreatedAt = t0.Add(time.Hour)
	if err := s.CreateRollout(second); err != nil {
		t.Fatal(err)
	}
	all, err := s.Rollouts(nil)
	if err != nil || len(all) != 2 || all[0].ID != r.ID || all[1].ID != second.ID {
		t.Errorf("Rollouts = %v, %v; want oldest first", all, err)
	}
	active, _ := s.Rollouts(func(r *RolloutRecord) bool { return r.Active() })
	if len(active) != 1 || active[0].ID != second.ID {
		t.Errorf("active rollouts %v", active)
	}
}

// TestRolloutRefusesMalformed: a bad rollout is refused and nothing is
// stored.
func TestRolloutRefusesMalformed(t *testing.T) {
	tests := []struct {
		desc string
		f    func(r *RolloutRecord)
	}{
		{"unknown state", func(r *RolloutRecord) { r.State = "exploded" }},
		{"bad version", func(r *RolloutRecord) { r.Version = "latest" }},
		{"machine in both waves", func(r *RolloutRecord) { r.Rest = []string{"m1"} }},
		{"machine twice", func(r *RolloutRecord) { r.Rest = []string{"m2", "m2"} }},
		{"bad machine id", func(r *RolloutRecord) { r.Rest = []string{"m/2"} }},
		{"no clients, not all", func(r *RolloutRecord) { r.Clients = nil }},
		{"no home", func(r *RolloutRecord) { r.Home = "" }},
		{"canary over 100%", func(r *RolloutRecord) { r.CanaryPct = 101 }},
		{"bad paused-by", func(r *RolloutRecord) { r.PausedBy = "a b" }},
		{"no creation time", func(r *RolloutRecord) { r.CreatedAt = time.Time{} }},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s, _ := newStore(t)
			r := testRollout("3f9a0c1b2d4e")
			tc.f(&r)
			before := capture(t, s)
			if err := s.CreateRollout(r); !errors.Is(err, ErrMalformed) {
				t.Fatalf("CreateRollout = %v, want ErrMalformed", err)
			}
			assertUnchanged(t, s, before)
		})
	}
}

// TestRolloutsReplicate: rollouts travel like every record; an abort on
// one broker wins over a resume on another, whatever their clocks.
func TestRolloutsReplicate(t *testing.T) {
	a, b := newBroker(t, "a", 0), newBroker(t, "b", 0)
	r := testRollout("3f9a0c1b2d4e")
	r.State = wire.RolloutPaused
	if err := a.CreateRollout(r); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)
	if _, err := a.UpdateRollout(r.ID, func(r *RolloutRecord) error { r.State = wire.RolloutAborted; return nil }); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(30 * time.Second) // b's resume is the later write
	if _, err := b.UpdateRollout(r.ID, func(r *RolloutRecord) error { r.State = wire.RolloutCanary; return nil }); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)
	for name, s := range map[string]*Store{"a": a.Store, "b": b.Store} {
		got, _, _ := s.Rollout(r.ID)
		if got.State != wire.RolloutAborted {
			t.Errorf("broker %s: state %s, want aborted", name, got.State)
		}
	}
}

// updateJob is a valid update job for machine m1.
func updateJob(id string) JobRecord {
	return JobRecord{ID: id, Machine: "m1", Client: "acme", Name: "pc", Mode: wire.ModeElevated, CreatedBy: "admin",
		CreatedAt: t0, Expires: t0.Add(time.Hour),
		Update: &JobUpdate{Version: "0.3.0", Rollout: "3f9a0c1b2d4e", HealthWindowSec: 900}}
}

func TestUpdateJobs(t *testing.T) {
	tests := []struct {
		desc string
		f    func(j *JobRecord)
		ok   bool
	}{
		{"an update", func(*JobRecord) {}, true},
		{"a script and an update", func(j *JobRecord) { j.Script = "echo hi" }, false},
		{"a shell and an update", func(j *JobRecord) { j.Shell = wire.ShellSh }, false},
		{"bad version", func(j *JobRecord) { j.Update.Version = "new" }, false},
		{"health window too short", func(j *JobRecord) { j.Update.HealthWindowSec = 5 }, false},
		{"bad rollout", func(j *JobRecord) { j.Update.Rollout = "3f9a/0c1b" }, false},
		{"bad report", func(j *JobRecord) { j.Update.Report = &wire.UpdateReport{Outcome: "maybe"} }, false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s, _ := newStore(t)
			j := updateJob(fmt.Sprintf("%032x", 1))
			tc.f(&j)
			err := s.CreateJobs([]JobRecord{j})
			if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("CreateJobs = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestUpdateJobsBatch: UpdateJobs changes what f accepts in one
// transaction and leaves the rest, and the report it adds replicates.
func TestUpdateJobsBatch(t *testing.T) {
	a, b := newBroker(t, "a", 0), newBroker(t, "b", 0)
	ids := []string{fmt.Sprintf("%032x", 1), fmt.Sprintf("%032x", 2), fmt.Sprintf("%032x", 3)}
	var js []JobRecord
	for _, id := range ids[:2] {
		js = append(js, updateJob(id))
	}
	if err := a.CreateJobs(js); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateJob(ids[0], func(j *JobRecord) error {
		j.State, j.Result = JobDone, &JobResult{Output: "0.3.0 staged; restarting into it", Finished: t0}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)
	rep := &wire.UpdateReport{From: "0.2.0", To: "0.3.0", Rollout: "3f9a0c1b2d4e", Outcome: wire.ReasonRolledBack,
		Detail: "exited with status 2 three times at start", At: t0}
	out, err := b.UpdateJobs(ids, func(j *JobRecord) error {
		if j.State != JobDone {
			return errors.New("not done")
		}
		j.Update.Report = rep
		return nil
	})
	if err != nil || len(out) != 1 || out[0].ID != ids[0] {
		t.Fatalf("UpdateJobs = %v, %v; want only the done job", out, err)
	}
	// Going backwards is refused per job.
	if out, _ := b.UpdateJobs(ids[:1], func(j *JobRecord) error { j.State = JobQueued; return nil }); len(out) != 0 {
		t.Errorf("a done job went back to queued: %v", out)
	}
	converge(t, a.Store, b.Store)
	got, _ := a.Jobs(func(j *JobRecord) bool { return j.ID == ids[0] })
	if len(got) != 1 || got[0].Update.Report == nil || got[0].Update.Report.Detail != rep.Detail {
		t.Errorf("broker a's copy %+v lacks the report", got)
	}
}

// TestCheckInKeepsLastUpdate: a check-in with an update report keeps it
// on the machine record; later check-ins without one leave it.
func TestCheckInKeepsLastUpdate(t *testing.T) {
	s, _ := enrolled(t, 0, "m1")
	ci := checkIn("m1", 1, testSnapshot("m1", 1))
	ci.Reason = wire.ReasonRolledBack
	ci.Update = &wire.UpdateReport{From: "0.4.2", To: "0.5.0", Outcome: wire.ReasonRolledBack, Detail: "no check-in within 15m0s", At: t0}
	mustCheckIn(t, s, ci, t0)
	mustCheckIn(t, s, checkIn("m1", 2, testSnapshot("m1", 2)), t0.Add(time.Minute))
	m, _ := s.Machine("m1")
	if m.LastUpdate == nil || m.LastUpdate.Detail != ci.Update.Detail || m.LastCheckIn.Seq != 2 {
		t.Fatalf("machine %+v, last update %+v", m.LastCheckIn, m.LastUpdate)
	}
	ci.Update.Outcome = "maybe"
	ci.Seq = 3
	if _, err := s.CheckIn(ci, t0.Add(2*time.Minute)); err == nil {
		t.Error("a check-in with a bad update report was stored")
	}
}

// TestJobsConvergeWhenTheOlderClockWins: a job done on one broker and
// cancelled later (by clock) on another converge on done through
// anti-entropy alone: the merged copy carries the later clock, so the
// broker holding the cancellation asks for it.
func TestJobsConvergeWhenTheOlderClockWins(t *testing.T) {
	a, b := newBroker(t, "a", 0), newBroker(t, "b", 0)
	id := fmt.Sprintf("%032x", 7)
	if err := a.CreateJobs([]JobRecord{updateJob(id)}); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)
	if _, err := a.UpdateJob(id, func(j *JobRecord) error {
		j.State, j.Result = JobDone, &JobResult{Finished: t0}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(30 * time.Second)
	if _, err := b.UpdateJob(id, func(j *JobRecord) error {
		j.State, j.Result = JobCancelled, &JobResult{Error: "cancelled by alice"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)
	if sa, sb := jobState(t, a.Store, id), jobState(t, b.Store, id); sa != JobDone || sb != JobDone {
		t.Errorf("states a %s, b %s; want done on both", sa, sb)
	}
}
