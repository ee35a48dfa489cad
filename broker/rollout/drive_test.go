package rollout

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// fourMachines enrols acme/a…d on 0.2.0.
func fourMachines(r *rig) {
	for _, n := range []string{"a", "b", "c", "d"} {
		r.machine("acme", n, "0.2.0")
	}
}

// TestCanaryThenRest: the canary wave updates first, alone; the rest
// follows once it is through, and the rollout ends done.
func TestCanaryThenRest(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25})
	if ro.State != wire.RolloutCanary || ro.Counts[wire.StepWaiting] != 4 || ro.HealthWindowSec != 900 || ro.MaxParallel != 50 || ro.FailPct != 10 {
		t.Fatalf("started %+v", ro)
	}
	rec := r.rolloutRecord(ro.ID)
	if len(rec.Canary) != 1 || len(rec.Rest) != 3 || rec.Home != "eu-1" {
		t.Fatalf("waves %v %v, home %s", rec.Canary, rec.Rest, rec.Home)
	}
	canary := "acme/" + strings.TrimPrefix(rec.Canary[0], "id-acme-")

	r.room.tick()
	if got := r.jobs(nil); !slices.Equal(got, []string{canary}) {
		t.Fatalf("jobs after the first tick: %v, want only the canary %s", got, canary)
	}
	_, steps := r.status(ro.ID)
	if steps[canary] != wire.StepQueued || countOf(steps, wire.StepWaiting) != 3 {
		t.Fatalf("steps %v", steps)
	}
	r.dispatch()
	r.room.tick() // the canary is updated: wave 1 starts
	if rec := r.rolloutRecord(ro.ID); rec.State != wire.RolloutRolling || rec.WaveStarted[1].IsZero() {
		t.Fatalf("after the canary: %s", rec.State)
	}
	if got := r.jobs(nil); len(got) != 1 {
		t.Fatalf("wave 1 queued before its tick: %v", got)
	}
	r.settle()
	ro, steps = r.status(ro.ID)
	if ro.State != wire.RolloutDone || countOf(steps, wire.StepUpdated) != 4 {
		t.Fatalf("end: %s %v", ro.State, steps)
	}
	for _, m := range ro.Machines {
		if m.From != "0.2.0" || m.Job == "" || m.Job != JobID(ro.ID, m.MachineID) {
			t.Errorf("machine %+v", m)
		}
	}
	if got := r.events(); !slices.Equal(got, []string{"rollout.started admin", "rollout.done broker eu-1"}) {
		t.Errorf("audit %v", got)
	}
	js, _ := r.st.Jobs(nil)
	for _, j := range js {
		if j.Mode != wire.ModeElevated || j.Script != "" || j.CreatedBy != "admin" || !j.Expires.Equal(now.Add(Lifetime)) ||
			j.Update.Report == nil || j.Update.Report.Outcome != wire.ReasonUpdated {
			t.Errorf("job %+v, update %+v", j, j.Update)
		}
	}
}

func countOf(steps map[string]string, step string) int {
	n := 0
	for _, s := range steps {
		if s == step {
			n++
		}
	}
	return n
}

// TestCanaryRollbackPauses: a canary that rolls back pauses the rollout
// with its reason, opens the rollout-paused alert, and no machine of
// wave 1 gets a job.
func TestCanaryRollbackPauses(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25})
	canary := r.rolloutRecord(ro.ID).Canary[0]
	r.behave[canary] = broken
	r.settle()

	rec := r.rolloutRecord(ro.ID)
	name := "acme/" + strings.TrimPrefix(canary, "id-acme-")
	want := "canary " + name + " rolled back: rolled back from 0.3.0: exited with status 2 three times at start"
	if rec.State != wire.RolloutPaused || rec.PausedReason != want || rec.PausedBy != "" || !rec.PausedAt.Equal(now) {
		t.Fatalf("rollout %s, %q by %q; want paused, %q", rec.State, rec.PausedReason, rec.PausedBy, want)
	}
	if got := r.jobs(nil); !slices.Equal(got, []string{name}) {
		t.Errorf("jobs %v: a machine outside the canary wave was touched", got)
	}
	_, steps := r.status(ro.ID)
	if steps[name] != wire.StepRolledBack || countOf(steps, wire.StepWaiting) != 3 {
		t.Errorf("steps %v", steps)
	}
	out := map[string]wire.Alert{}
	recs, _ := r.st.Rollouts(nil)
	alerts.RolloutAlerts(recs, out)
	a, ok := out["rollout/"+ro.ID]
	if len(out) != 1 || !ok || a.Kind != wire.AlertRolloutPaused || a.Client != "acme" || !strings.Contains(a.Detail, want) {
		t.Errorf("alerts %+v", out)
	}
	if r.changed == 0 {
		t.Error("alerts were not told of the pause")
	}
	if got := r.events(); !slices.Equal(got, []string{"rollout.started admin", "rollout.paused broker eu-1"}) {
		t.Errorf("audit %v", got)
	}
}

// TestResumeContinues: after a canary failure an admin resumes; the
// failure is accepted, wave 1 starts at once (the canary wave is
// through), and the alert resolves.
func TestResumeContinues(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25})
	r.behave[r.rolloutRecord(ro.ID).Canary[0]] = refuse
	r.settle()
	if rec := r.rolloutRecord(ro.ID); rec.State != wire.RolloutPaused || !strings.Contains(rec.PausedReason, "signed by another key") {
		t.Fatalf("rollout %s: %s", rec.State, rec.PausedReason)
	}
	out, werr := r.room.Resume(admin, &wire.RolloutIDArgs{ID: ro.ID[:6]})
	if werr != nil || out.State != wire.RolloutRolling || out.PausedReason != "" {
		t.Fatalf("Resume = %+v, %v", out, werr)
	}
	r.settle()
	ro, steps := r.status(ro.ID)
	if ro.State != wire.RolloutDone || countOf(steps, wire.StepUpdated) != 3 || countOf(steps, wire.StepFailed) != 1 {
		t.Errorf("end: %s %v", ro.State, steps)
	}
	alertsNow := map[string]wire.Alert{}
	recs, _ := r.st.Rollouts(nil)
	alerts.RolloutAlerts(recs, alertsNow)
	if len(alertsNow) != 0 {
		t.Errorf("alerts after the resume: %v", alertsNow)
	}
	want := []string{"rollout.started admin", "rollout.paused broker eu-1", "rollout.resumed admin", "rollout.done broker eu-1"}
	if got := r.events(); !slices.Equal(got, want) {
		t.Errorf("audit %v, want %v", got, want)
	}
	if _, werr := r.room.Resume(admin, &wire.RolloutIDArgs{ID: ro.ID}); werr == nil || werr.Code != wire.CodeConflict {
		t.Errorf("resuming a done rollout: %v", werr)
	}
}

// TestFailPctInWave1: wave 1 pauses once more than its threshold of the
// machines it started failed, not before; a threshold of 0% pauses at
// its first failure, and one left out is the default, 10%.
func TestFailPctInWave1(t *testing.T) {
	tests := []struct {
		desc    string
		failPct *int // nil: left out
		fail    int  // machines of wave 1 whose agents refuse
		reason  string
	}{
		{"one of ten is the threshold", new(10), 1, ""},
		{"two of ten are above it", new(10), 2, "2 of 10 machines started in wave 1 failed or rolled back (limit 10%)"},
		{"the default is 10%", nil, 1, ""},
		{"above the default", nil, 2, "2 of 10 machines started in wave 1 failed or rolled back (limit 10%)"},
		{"0% pauses at one failure", new(0), 1, "1 of 10 machines started in wave 1 failed or rolled back (limit 0%)"},
		{"100% never pauses", new(100), 10, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := newRig(t)
			var ids []string
			for i := range 12 {
				ids = append(ids, r.machine("acme", string(rune('a'+i)), "0.2.0"))
			}
			ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 1, MaxParallel: 10, FailPct: tc.failPct})
			rec := r.rolloutRecord(ro.ID)
			for _, id := range rec.Rest[:tc.fail] {
				r.behave[id] = refuse
			}
			// The eleventh machine of wave 1 comes back only once the
			// others are through, so the threshold is judged on ten.
			late := rec.Rest[10]
			r.reach.set(late, false)
			r.settle()
			rec = r.rolloutRecord(ro.ID)
			paused := tc.reason != ""
			if got := rec.State == wire.RolloutPaused; got != paused {
				t.Fatalf("state %s (%s), want paused %v", rec.State, rec.PausedReason, paused)
			}
			if paused && !strings.HasPrefix(rec.PausedReason, tc.reason) {
				t.Errorf("reason %q, want %q", rec.PausedReason, tc.reason)
			}
			r.reach.set(late, true)
			r.settle()
			if rec := r.rolloutRecord(ro.ID); !paused && rec.State != wire.RolloutDone {
				t.Errorf("state %s once the last machine is back, want done", rec.State)
			}
		})
	}
}

// TestHealthWindow: an agent that takes the update and is not heard of
// again is installing through the health window and its grace, then
// failed; a canary's silence pauses the rollout.
func TestHealthWindow(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25, HealthWindowSec: 600})
	r.behave[r.rolloutRecord(ro.ID).Canary[0]] = silent
	r.settle()
	ro, steps := r.status(ro.ID)
	if ro.State != wire.RolloutCanary || countOf(steps, wire.StepInstalling) != 1 {
		t.Fatalf("before the window: %s %v", ro.State, steps)
	}
	r.advance(10*time.Minute + time.Minute) // the window and the grace, exactly
	r.settle()
	if _, steps := r.status(ro.ID); countOf(steps, wire.StepInstalling) != 1 {
		t.Fatalf("at the end of the grace: %v", steps)
	}
	r.advance(time.Second)
	r.settle()
	ro, steps = r.status(ro.ID)
	if ro.State != wire.RolloutPaused || countOf(steps, wire.StepFailed) != 1 ||
		!strings.Contains(ro.PausedReason, "no check-in on 0.3.0 within 10m0s of the update") {
		t.Errorf("after the window: %s (%s) %v", ro.State, ro.PausedReason, steps)
	}
}

// TestOfflineJobStaysQueued: a machine offline when its wave comes
// keeps its queued job; the rollout waits for it and it updates when it
// is back.
func TestOfflineJobStaysQueued(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25})
	off := r.rolloutRecord(ro.ID).Rest[0]
	r.reach.set(off, false)
	r.settle()
	r.advance(24 * time.Hour)
	r.settle()
	ro, steps := r.status(ro.ID)
	name := "acme/" + strings.TrimPrefix(off, "id-acme-")
	if ro.State != wire.RolloutRolling || steps[name] != wire.StepQueued || countOf(steps, wire.StepUpdated) != 3 {
		t.Fatalf("while it is away: %s %v", ro.State, steps)
	}
	r.reach.set(off, true)
	r.settle()
	if ro, steps := r.status(ro.ID); ro.State != wire.RolloutDone || steps[name] != wire.StepUpdated {
		t.Errorf("once it is back: %s %v", ro.State, steps)
	}
}

// TestSkips: machines already on the version, newer (not a rollback) or
// older than the release's minimum get no job and no canary place.
func TestSkips(t *testing.T) {
	r := newRig(t)
	r.machine("acme", "same", "0.3.0")
	r.machine("acme", "newer", "0.4.0")
	r.machine("acme", "old", "0.1.9")
	r.machine("acme", "due", "0.2.1")
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 100})
	if rec := r.rolloutRecord(ro.ID); !slices.Equal(rec.Canary, []string{"id-acme-due"}) {
		t.Fatalf("canary %v, want only the machine that needs the update", rec.Canary)
	}
	r.settle()
	ro, _ = r.status(ro.ID)
	details := map[string]string{}
	for _, m := range ro.Machines {
		details[m.Machine] = m.Step + ": " + m.Detail
	}
	want := map[string]string{
		"acme/same":  "skipped: already on 0.3.0",
		"acme/newer": "skipped: on 0.4.0, newer than 0.3.0 (not a rollback)",
		"acme/old":   "skipped: agent 0.1.9 is older than 0.3.0's minimum 0.2.0",
		"acme/due":   "updated: checked in on 0.3.0",
	}
	if !maps.Equal(details, want) || ro.State != wire.RolloutDone {
		t.Errorf("%s: %v\nwant %v", ro.State, details, want)
	}
	if got := r.jobs(nil); !slices.Equal(got, []string{"acme/due"}) {
		t.Errorf("jobs %v", got)
	}
}

// TestAbortCancels: an abort cancels the queued jobs (the queue's gate
// cancels any it meets) and marks the machines not reached cancelled;
// an ended rollout cannot be changed.
func TestAbortCancels(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 0})
	for _, id := range r.rolloutRecord(ro.ID).Rest[:2] {
		r.reach.set(id, false)
	}
	r.settle()
	if got := r.jobs(func(j *store.JobRecord) bool { return j.State == store.JobQueued }); len(got) != 2 {
		t.Fatalf("queued jobs %v, want the two offline machines'", got)
	}
	out, werr := r.room.Abort(admin, &wire.RolloutIDArgs{ID: ro.ID})
	if werr != nil || out.State != wire.RolloutAborted || out.Counts[wire.StepCancelled] != 2 || out.Counts[wire.StepUpdated] != 2 {
		t.Fatalf("Abort = %+v, %v", out, werr)
	}
	if got := r.jobs(func(j *store.JobRecord) bool { return j.State == store.JobQueued }); len(got) != 0 {
		t.Errorf("queued jobs after the abort: %v", got)
	}
	js, _ := r.st.Jobs(func(j *store.JobRecord) bool { return j.State == store.JobCancelled })
	for _, j := range js {
		if !strings.Contains(j.Result.Error, "aborted by admin") {
			t.Errorf("cancelled job's reason %q", j.Result.Error)
		}
	}
	for _, op := range []func(*wire.Technician, *wire.RolloutIDArgs) (wire.Rollout, *wire.Error){r.room.Pause, r.room.Resume} {
		if _, werr := op(admin, &wire.RolloutIDArgs{ID: ro.ID}); werr == nil || werr.Code != wire.CodeConflict {
			t.Errorf("changing an aborted rollout: %v", werr)
		}
	}
	if again, werr := r.room.Abort(admin, &wire.RolloutIDArgs{ID: ro.ID}); werr != nil || again.State != wire.RolloutAborted {
		t.Errorf("a second abort: %+v, %v; want the rollout as it is", again, werr)
	}
	want := []string{"rollout.started admin", "rollout.aborted admin"}
	if got := r.events(); !slices.Equal(got, want) {
		t.Errorf("audit %v", got)
	}
}

// TestAdminPause: an admin's pause holds the queued jobs (the gate says
// wait) and opens no alert; resume lets them go.
func TestAdminPause(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 0})
	r.room.tick()
	if _, werr := r.room.Pause(admin, &wire.RolloutIDArgs{ID: ro.ID}); werr != nil {
		t.Fatal(werr)
	}
	r.room.tick()
	if ran := r.dispatch(); len(ran) != 0 {
		t.Fatalf("ran %v while paused", ran)
	}
	out := map[string]wire.Alert{}
	recs, _ := r.st.Rollouts(nil)
	alerts.RolloutAlerts(recs, out)
	if len(out) != 0 {
		t.Errorf("an admin's pause opened %v", out)
	}
	if _, werr := r.room.Pause(admin, &wire.RolloutIDArgs{ID: ro.ID}); werr == nil || werr.Code != wire.CodeConflict {
		t.Errorf("second pause: %v", werr)
	}
	tech := &wire.Technician{Name: "alice", Clients: []string{"acme"}}
	if _, werr := r.room.Resume(tech, &wire.RolloutIDArgs{ID: ro.ID}); werr == nil || werr.Code != wire.CodeForbidden {
		t.Errorf("a technician resumed: %v", werr)
	}
	if _, werr := r.room.Resume(admin, &wire.RolloutIDArgs{ID: ro.ID}); werr != nil {
		t.Fatal(werr)
	}
	r.settle()
	if ro, _ := r.status(ro.ID); ro.State != wire.RolloutDone {
		t.Errorf("state %s after the resume", ro.State)
	}
}

// TestMaxParallel: the gate lets no more machines of a rollout update at
// once than its max-parallel.
func TestMaxParallel(t *testing.T) {
	r := newRig(t)
	var ids []string
	for i := range 6 {
		ids = append(ids, r.machine("acme", string(rune('a'+i)), "0.2.0"))
	}
	for _, id := range ids {
		r.behave[id] = silent // they stay installing
	}
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, MaxParallel: 2})
	r.room.tick()
	if ran := r.dispatch(); len(ran) != 2 {
		t.Fatalf("first round ran %v, want 2", ran)
	}
	r.room.tick()
	if ran := r.dispatch(); len(ran) != 0 {
		t.Fatalf("ran %v while two are installing", ran)
	}
	if ro, _ := r.status(ro.ID); ro.Counts[wire.StepInstalling] != 2 || ro.Counts[wire.StepQueued] != 4 {
		t.Errorf("counts %v", ro.Counts)
	}
}

// TestWithdrawnRelease: a withdrawn release stops its rollouts: the
// gate cancels their jobs and the driver aborts them.
func TestWithdrawnRelease(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 0})
	r.room.tick()
	r.rel.withdraw("0.3.0", "carol")
	r.dispatch()
	if got := r.jobs(func(j *store.JobRecord) bool { return j.State == store.JobCancelled }); len(got) != 4 {
		t.Errorf("cancelled jobs %v", got)
	}
	r.room.tick()
	rec := r.rolloutRecord(ro.ID)
	if rec.State != wire.RolloutAborted || rec.PausedReason != "release 0.3.0 was withdrawn" {
		t.Errorf("rollout %s: %s", rec.State, rec.PausedReason)
	}
	if got := r.events(); !slices.Equal(got, []string{"rollout.started admin", "rollout.aborted carol"}) {
		t.Errorf("audit %v", got)
	}
	if _, werr := r.room.Start(admin, &wire.RolloutArgs{Version: "0.3.0", All: true}); werr == nil || werr.Code != wire.CodeConflict {
		t.Errorf("start of a withdrawn release: %v", werr)
	}
}

// TestTakeover: a rollout is driven by its home broker while that one is
// alive (or suspect for up to suspectFor), else by the alive broker with
// the smallest name.
func TestTakeover(t *testing.T) {
	member := func(name, state string) cluster.Member { return cluster.Member{Name: name, State: state} }
	tests := []struct {
		desc    string
		local   string
		members []cluster.Member
		drives  bool
	}{
		{"the home broker", "eu-1", []cluster.Member{member("eu-1", cluster.StateAlive), member("eu-0", cluster.StateAlive)}, true},
		{"another while the home is alive", "eu-0", []cluster.Member{member("eu-0", cluster.StateAlive), member("eu-1", cluster.StateAlive)}, false},
		{"the smallest alive once the home is dead", "eu-2", []cluster.Member{member("eu-1", cluster.StateDead), member("eu-2", cluster.StateAlive), member("eu-3", cluster.StateAlive)}, true},
		{"not the smallest alive", "eu-3", []cluster.Member{member("eu-1", cluster.StateDead), member("eu-2", cluster.StateAlive), member("eu-3", cluster.StateAlive)}, false},
		{"a home suspect for long is gone", "eu-0", []cluster.Member{{Name: "eu-1", State: cluster.StateSuspect, Since: now.Add(-suspectFor - time.Second)}, member("eu-0", cluster.StateAlive)}, true},
		{"a home suspect for a while is not", "eu-0", []cluster.Member{{Name: "eu-1", State: cluster.StateSuspect, Since: now.Add(-suspectFor)}, member("eu-0", cluster.StateAlive)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := newRig(t)
			fourMachines(r)
			ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 25}) // home eu-1
			room := r.newRoom(tc.local, &members{local: tc.local, list: tc.members})
			room.tick()
			if got := len(r.jobs(nil)) == 1; got != tc.drives {
				t.Fatalf("%s queued the canary: %v, want %v", tc.local, got, tc.drives)
			}
			if !tc.drives {
				return
			}
			r.room = room
			r.settle()
			if ro, _ := r.status(ro.ID); ro.State != wire.RolloutDone {
				t.Errorf("state %s after the takeover", ro.State)
			}
		})
	}
}

// TestStartRefuses: what rollout start refuses, storing nothing.
func TestStartRefuses(t *testing.T) {
	r := newRig(t)
	r.machine("acme", "a", "0.2.0")
	r.machine("beta", "b", "0.2.0")
	first := r.start(wire.RolloutArgs{Clients: []string{"beta"}})
	tests := []struct {
		desc string
		tech *wire.Technician
		args wire.RolloutArgs
		code string
		want string
	}{
		{"not an admin", &wire.Technician{Name: "alice", Clients: []string{"*"}}, wire.RolloutArgs{Version: "0.3.0", All: true}, wire.CodeForbidden, "admin"},
		{"unknown release", admin, wire.RolloutArgs{Version: "0.9.0", All: true}, wire.CodeNotFound, "publish it first"},
		{"unknown client", admin, wire.RolloutArgs{Version: "0.3.0", Clients: []string{"gamma"}}, wire.CodeNotFound, `no client "gamma"`},
		{"machines in an active rollout", admin, wire.RolloutArgs{Version: "0.3.0", All: true}, wire.CodeConflict, first.ID},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, werr := r.room.Start(tc.tech, &tc.args)
			if werr == nil || werr.Code != tc.code || !strings.Contains(werr.Message, tc.want) {
				t.Fatalf("Start = %v, want %s with %q", werr, tc.code, tc.want)
			}
		})
	}
	if recs, _ := r.st.Rollouts(nil); len(recs) != 1 {
		t.Errorf("%d rollouts stored", len(recs))
	}
}

// TestCanaryChoice: canaries are machines that need the update, ready
// first, then online, one per client before a second of any client.
func TestCanaryChoice(t *testing.T) {
	r := newRig(t)
	r.machine("acme", "a1", "0.2.0")
	r.machine("acme", "a2", "0.2.0")
	r.machine("beta", "b1", "0.2.0")
	off := r.machine("gamma", "g1", "0.2.0")
	r.reach.set(off, false)
	r.machine("gamma", "g2", "0.3.0") // needs nothing
	ro := r.start(wire.RolloutArgs{All: true, CanaryPct: 50})
	rec := r.rolloutRecord(ro.ID)
	want := []string{"id-acme-a1", "id-beta-b1"}
	if !slices.Equal(rec.Canary, want) {
		t.Errorf("canary %v, want %v", rec.Canary, want)
	}
	if len(rec.Rest) != 3 {
		t.Errorf("rest %v", rec.Rest)
	}
}

// TestSkipAtDispatch: a machine that reached the version another way
// while its job waited is skipped when the queue would send the job.
func TestSkipAtDispatch(t *testing.T) {
	r := newRig(t)
	fourMachines(r)
	ro := r.start(wire.RolloutArgs{Clients: []string{"acme"}, CanaryPct: 0})
	away := r.rolloutRecord(ro.ID).Rest[0]
	r.reach.set(away, false)
	r.settle()
	r.checkIn(away, "0.3.1", wire.ReasonRestart, nil) // updated by hand
	r.reach.set(away, true)
	r.settle()
	ro, _ = r.status(ro.ID)
	var got wire.RolloutMachine
	for _, m := range ro.Machines {
		if m.MachineID == away {
			got = m
		}
	}
	if ro.State != wire.RolloutDone || got.Step != wire.StepSkipped || got.Detail != "on 0.3.1, newer than 0.3.0 (not a rollback)" {
		t.Errorf("rollout %s, machine %+v", ro.State, got)
	}
}
