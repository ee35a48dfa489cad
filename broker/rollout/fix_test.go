package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestNoCanaryUpdatedPauses: a canary wave that ends with no canary
// updated (its jobs cancelled or expired) pauses the rollout with an
// alert instead of starting wave 1; one whose canaries got to the
// version another way starts wave 1; a cancellation that raced the
// job's sending holds the wave until the agent's word.
func TestNoCanaryUpdatedPauses(t *testing.T) {
	tests := []struct {
		desc  string
		end   func(r *rig, canary, job string)
		state string
		want  string
	}{
		{"cancelled", func(r *rig, _, job string) {
			r.endJob(job, store.JobCancelled, &store.JobResult{ExitCode: -1, Error: "cancelled by admin"})
		}, wire.RolloutPaused, "no canary updated (1 cancelled)"},
		{"expired", func(r *rig, _, job string) {
			r.endJob(job, store.JobExpired, &store.JobResult{ExitCode: -1})
		}, wire.RolloutPaused, "no canary updated (1 expired)"},
		{"cancel raced the send", func(r *rig, _, job string) {
			if _, err := r.st.UpdateJob(job, func(j *store.JobRecord) error {
				j.State, j.Result = store.JobCancelled, &store.JobResult{ExitCode: -1, Session: "s-1", Error: "cancelled by admin"}
				return nil
			}); err != nil {
				r.t.Fatal(err)
			}
		}, wire.RolloutCanary, ""},
		{"on the version already", func(r *rig, canary, _ string) {
			r.checkIn(canary, "0.3.0", wire.ReasonUpdated, nil)
		}, wire.RolloutRolling, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := newRig(t)
			fourMachines(r)
			ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25})
			canary := r.rolloutRecord(ro.ID).Canary[0]
			r.room.tick()
			tc.end(r, canary, JobID(ro.ID, canary))
			for range 3 {
				r.room.tick()
				r.dispatch()
			}
			rec := r.rolloutRecord(ro.ID)
			if rec.State != tc.state || rec.PausedReason != tc.want {
				t.Fatalf("rollout %s (%q), want %s (%q)", rec.State, rec.PausedReason, tc.state, tc.want)
			}
			out := map[string]wire.Alert{}
			alerts.RolloutAlerts([]store.RolloutRecord{rec}, out)
			if paused := tc.state == wire.RolloutPaused; (len(out) == 1) != paused {
				t.Errorf("alerts %v", out)
			}
			if tc.state != wire.RolloutRolling {
				if got := r.jobs(nil); len(got) != 1 {
					t.Errorf("jobs %v: wave 1 was touched", got)
				}
			}
		})
	}
}

// TestOfflineSentJobFreesItsPlace: a job sent to a machine that went
// offline before answering does not hold one of the rollout's
// max-parallel places, and its step says so.
func TestOfflineSentJobFreesItsPlace(t *testing.T) {
	r := newRig(t)
	a := r.machine("acme", "a", "0.2.0")
	r.machine("acme", "b", "0.2.0")
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, MaxParallel: 1})
	r.room.tick()
	r.endJob(JobID(ro.ID, a), store.JobRunning, &store.JobResult{Session: "s-a"})
	r.reach.set(a, false)
	r.room.tick()
	if ran := r.dispatch(); len(ran) != 1 || ran[0] != "b" {
		t.Fatalf("ran %v, want b while a is offline", ran)
	}
	got, _ := r.room.Status(admin, &wire.RolloutIDArgs{ID: ro.ID})
	for _, m := range got.Machines {
		if m.Machine == "acme/a" && (m.Step != wire.StepQueued || !strings.HasPrefix(m.Detail, "sent; machine offline")) {
			t.Errorf("a: %s %q", m.Step, m.Detail)
		}
	}
}

// TestResumeCountsNewFailures: after a resume, a machine that failed
// before and then recovered does not hide a new failure.
func TestResumeCountsNewFailures(t *testing.T) {
	r := newRig(t)
	for _, n := range []string{"a", "b", "c"} {
		r.behave[r.machine("acme", n, "0.2.0")] = silent
	}
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, MaxParallel: 1, HealthWindowSec: 60})
	r.settle()
	r.advance(3 * time.Minute) // the first one's window and grace pass
	r.settle()
	got, _ := r.room.Status(admin, &wire.RolloutIDArgs{ID: ro.ID})
	var first wire.RolloutMachine
	for _, m := range got.Machines {
		if m.Step == wire.StepFailed {
			first = m
		}
	}
	if got.State != wire.RolloutPaused || first.MachineID == "" {
		t.Fatalf("after the first silence: %s %+v", got.State, got.Machines)
	}
	if _, werr := r.room.Resume(admin, &wire.RolloutIDArgs{ID: ro.ID}); werr != nil {
		t.Fatal(werr)
	}
	r.checkIn(first.MachineID, "0.3.0", wire.ReasonUpdated, nil) // late, but there
	r.settle()
	r.advance(3 * time.Minute) // the second one's window and grace pass
	r.settle()
	rec := r.rolloutRecord(ro.ID)
	if rec.State != wire.RolloutPaused || strings.Contains(rec.PausedReason, first.Machine) {
		_, steps := r.status(ro.ID)
		t.Errorf("after the second silence: %s (%s) %v", rec.State, rec.PausedReason, steps)
	}
}

// TestEndedRolloutsKeepCounts: a rollout that ends keeps its counts by
// client, listings show them without working the steps out again, and
// ticks stop reading it.
func TestEndedRolloutsKeepCounts(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25})
	r.settle()
	rec := r.rolloutRecord(ro.ID)
	if rec.State != wire.RolloutDone || rec.Final["acme"][wire.StepUpdated] != 4 || len(rec.Final) != 1 {
		t.Fatalf("rollout %s, final %v", rec.State, rec.Final)
	}
	if r.room.looked(rec.ID, rec.State) {
		t.Error("a tick still reads the done rollout")
	}
	// A listing takes the kept counts: offboarding a machine afterwards
	// does not change them.
	list, werr := r.room.List(admin)
	if werr != nil || len(list) != 1 || list[0].Counts[wire.StepUpdated] != 4 {
		t.Errorf("List = %+v, %v", list, werr)
	}
	if list, _ := r.room.List(&wire.Technician{Name: "tech", Clients: []string{"other"}}); len(list) != 0 {
		t.Errorf("a technician of another client sees %+v", list)
	}
}

// TestAbortedCleanEverywhere: a broker that does not drive an aborted
// rollout stops reading it too once no job of it is queued; the abort's
// reply says how many queued updates it cancelled.
func TestAbortedCleanEverywhere(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 0})
	r.room.tick()
	out, werr := r.room.Abort(admin, &wire.RolloutIDArgs{ID: ro.ID})
	if werr != nil || !strings.HasSuffix(out.PausedReason, "; 4 queued updates cancelled") {
		t.Fatalf("Abort = %q, %v", out.PausedReason, werr)
	}
	other := r.newRoom("eu-2", &members{local: "eu-2", list: []cluster.Member{{Name: "eu-1", State: cluster.StateAlive}, {Name: "eu-2", State: cluster.StateAlive}}})
	if !other.looked(ro.ID, wire.RolloutAborted) {
		t.Fatal("eu-2 skips an aborted rollout it never looked at")
	}
	other.tick()
	if other.looked(ro.ID, wire.RolloutAborted) {
		t.Error("eu-2 still reads the aborted rollout with no queued job")
	}
	if rec := r.rolloutRecord(ro.ID); rec.Final[""] != nil || rec.Final["acme"][wire.StepCancelled] != 4 {
		t.Errorf("final %v", rec.Final)
	}
}
