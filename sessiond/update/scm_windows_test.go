package update

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestSCMHandOverCommits: the SCM stops the service (the old binary) during
// the trial; the watchdog stops the child through its stdin, releases the
// lock and leaves the trial to resume, and the service reports stopped
// within its wait hint. Started again, the old binary resumes the trial,
// counting from the start it gave back, and commits the child that checks
// in, though its own file is EXE and runs; the next start of the service
// runs the new binary from the same path.
func TestSCMHandOverCommits(t *testing.T) {
	in := newSCMInstall(t, "silent")
	in.stopDuringTrial(t, false)

	in.setPart(t, "healthy")
	pid := in.start(t, scmOldVersion)
	in.waitEvent(t, time.Minute, 1, "service", pid, "resuming")
	child := in.waitEvent(t, time.Minute, 2, "child", 0, "started")
	if child.Start != 1 || child.Version != scmNewVersion {
		t.Errorf("the resumed trial started %s at start %d, want %s at start 1 (the stopped one given back)", child.Version, child.Start, scmNewVersion)
	}
	waitFor(t, time.Minute, "the commit", func() bool { o, _ := LoadOutcome(in.state); return o != nil })
	o, err := LoadOutcome(in.state)
	if err != nil || o.Report.Outcome != wire.ReasonUpdated || o.Report.From != scmOldVersion || o.Report.To != scmNewVersion || !o.Reported {
		t.Fatalf("outcome %+v, %v; want updated %s → %s, reported", o, err, scmOldVersion, scmNewVersion)
	}
	in.checkSum(t, in.p.Exe, in.newSum, "EXE after the commit")
	in.checkSum(t, in.p.Previous, in.oldSum, "EXE.previous after the commit")
	if _, err := os.Stat(in.p.New); !os.IsNotExist(err) {
		t.Errorf("EXE.new is still there after the commit (%v)", err)
	}
	if tr, err := LoadTrial(in.state); tr != nil || err != nil {
		t.Errorf("trial state after the commit: %+v, %v", tr, err)
	}
	// Windows refuses to replace the file of a running program, and the
	// service's process was EXE: the swap renamed it aside.
	aside, _ := filepath.Glob(in.p.Exe + ".old-*")
	if len(aside) != 1 {
		t.Fatalf("beside EXE after the commit: %v, want the running old binary renamed aside", aside)
	}
	in.checkSum(t, aside[0], in.oldSum, "the binary renamed aside")
	t.Logf("the running old binary was renamed aside as %s", filepath.Base(aside[0]))

	// The watchdog relays Stop to the committed child.
	in.stop(t, pid)
	in.checkStoppedChild(t, child, false)
	in.checkLockFree(t)
	if e := in.find(t, "service", pid, "watchdog ended"); len(e) != 1 || e[0].What != "watchdog ended: committed, child exit <nil>" {
		t.Errorf("the watchdog ended %+v, want committed with a clean exit of the child", e)
	}

	// The SCM now starts the new binary from the path it was given.
	in.checkImagePath(t)
	pid = in.start(t, scmNewVersion)
	in.waitEvent(t, time.Minute, 1, "service", pid, "agent running")
	if len(in.find(t, "service", pid, "resuming")) != 0 || len(in.find(t, "service", pid, "staged")) != 0 {
		t.Error("the committed binary found a trial to resume or a release to stage")
	}
	in.stop(t, pid)
	if n := len(in.find(t, "child", 0, "started")); n != 2 {
		t.Errorf("%d children started in all, want 2", n)
	}
}

// TestSCMHandOverRollsBack: after a stop during the trial, the service's
// next start resumes it; the new binary exits at every start (three, the
// stopped one given back), so the old binary rolls back and runs the
// agent itself, in the same service process, and EXE never changed; the
// service's next start runs the old binary and finds nothing to resume.
func TestSCMHandOverRollsBack(t *testing.T) {
	in := newSCMInstall(t, "silent")
	in.stopDuringTrial(t, false)

	in.setPart(t, "exit2")
	pid := in.start(t, scmOldVersion)
	in.waitEvent(t, time.Minute, 1, "service", pid, "rolled back")
	in.waitEvent(t, time.Minute, 1, "service", pid, "agent running")
	var starts []int
	for _, e := range in.find(t, "child", 0, "started")[1:] {
		if e.Version != scmNewVersion {
			t.Errorf("child %d is %s, want %s", e.PID, e.Version, scmNewVersion)
		}
		starts = append(starts, e.Start)
	}
	if fmt.Sprint(starts) != "[1 2 3]" {
		t.Errorf("after the restart the new binary was started as starts %v, want [1 2 3]", starts)
	}
	const detail = "exited with status 2 three times at start (last line: panic: the new build is broken)"
	o, err := LoadOutcome(in.state)
	if err != nil || o == nil || o.Report.Outcome != wire.ReasonRolledBack || o.Report.Detail != detail || o.Reported {
		t.Fatalf("outcome %+v, %v; want rolled back, %q, not reported yet", o, err, detail)
	}
	in.checkSum(t, in.p.Exe, in.oldSum, "EXE after the rollback")
	if _, err := os.Stat(in.p.New); !os.IsNotExist(err) {
		t.Errorf("EXE.new is still there after the rollback (%v)", err)
	}
	if _, err := os.Stat(in.p.Previous); !os.IsNotExist(err) {
		t.Errorf("EXE.previous exists after a rollback that never committed (%v)", err)
	}
	if tr, err := LoadTrial(in.state); tr != nil || err != nil {
		t.Errorf("trial state after the rollback: %+v, %v", tr, err)
	}
	in.stop(t, pid)
	in.checkLockFree(t)

	in.checkImagePath(t)
	pid = in.start(t, scmOldVersion)
	in.waitEvent(t, time.Minute, 1, "service", pid, "agent running")
	in.stop(t, pid)
	if n := len(in.find(t, "child", 0, "started")); n != 4 {
		t.Errorf("%d children started in all, want 4: one before the stop, three after", n)
	}
}

// TestSCMStopKillsStubbornChild: a child on trial that ignores the end
// of its stdin is killed after the watchdog's default grace (20 s), and
// the service still reports stopped within its wait hint (30 s), with
// the child gone, the lock free and the trial left to resume.
func TestSCMStopKillsStubbornChild(t *testing.T) {
	in := newSCMInstall(t, "stubborn")
	if took := in.stopDuringTrial(t, true); took < 20*time.Second {
		t.Errorf("the stop took %s: the stubborn child was not given its grace of 20 s", took)
	}
}
