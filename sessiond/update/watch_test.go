package update

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// runAsync runs the watchdog in a goroutine; the returned function waits
// for its result.
func runAsync(ctx context.Context, cfg Config, t *Trial) func() Result {
	done := make(chan Result, 1)
	go func() { done <- Run(ctx, cfg, t) }()
	return func() Result { return <-done }
}

// outcome reads the recorded outcome, nil when there is none.
func outcome(t *testing.T, state string) *Outcome {
	t.Helper()
	o, err := LoadOutcome(state)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// checkCommitted checks the swap: EXE is the new binary, EXE.previous the
// old one, and no EXE.new or trial state is left.
func (in *install) checkCommitted(t *testing.T) {
	t.Helper()
	if sum, _ := fileSum(t, in.p.Exe); sum != in.sum {
		t.Error("EXE is not the new binary")
	}
	if prev, err := os.ReadFile(in.p.Previous); err != nil || !bytes.Equal(prev, in.old) {
		t.Errorf("EXE.previous is not the old binary (%v)", err)
	}
	if _, err := os.Stat(in.p.New); !os.IsNotExist(err) {
		t.Errorf("EXE.new is still there (%v)", err)
	}
	if tr, _ := LoadTrial(in.state); tr != nil {
		t.Errorf("trial state left: %+v", tr)
	}
}

// TestTrialCommits: a new binary that checks in is committed while it
// runs; the watchdog then relays stop to it and ends when it does.
func TestTrialCommits(t *testing.T) {
	in := newInstall(t)
	tr := in.trial(t, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runAsync(ctx, in.config(t, "healthy"), tr)
	waitFor(t, time.Minute, "the commit", func() bool { o, _ := LoadOutcome(in.state); return o != nil })
	in.checkCommitted(t)
	o := outcome(t, in.state)
	if o.Report.Outcome != wire.ReasonUpdated || o.Report.From != "0.2.0" || o.Report.To != "0.3.0" || !o.Reported {
		t.Errorf("outcome %+v", o)
	}
	if b, _ := os.ReadFile(filepath.Join(in.state, "child-exe")); string(b) != in.p.Exe {
		t.Errorf("the child was told its executable is %q, want %q", b, in.p.Exe)
	}
	if b, _ := os.ReadFile(filepath.Join(in.state, "child-env")); len(b) != 0 {
		t.Errorf("the child's own children would inherit %q", b)
	}
	cancel() // the service manager stops the watchdog
	r := wait()
	if r.End != Committed || r.Exit != nil || r.ExitCode != 0 {
		t.Fatalf("result %+v, want committed and a clean stop", r)
	}
}

// TestTrialCommitThenExit: a child that fails after it checked in is still
// committed; its exit status becomes the watchdog's result.
func TestTrialCommitThenExit(t *testing.T) {
	in := newInstall(t)
	r := Run(context.Background(), in.config(t, "healthy-exit3"), in.trial(t, time.Minute))
	if r.End != Committed || r.ExitCode != 3 {
		t.Fatalf("result %+v, want committed with status 3", r)
	}
	in.checkCommitted(t)
}

// TestTrialRollsBack: a new binary that exits at every start, or never
// checks in within the window, is rolled back: EXE untouched, EXE.new
// gone, and the reason names what happened.
func TestTrialRollsBack(t *testing.T) {
	for _, tc := range []struct {
		part   string
		window time.Duration
		grace  time.Duration
		detail string
	}{
		{"exit2", time.Minute, 0, "exited with status 2 three times at start (last line: panic: the new build is broken)"},
		{"silent", time.Second, 0, "no check-in within 1s"},
		{"stubborn", time.Second, 100 * time.Millisecond, "no check-in within 1s"}, // killed after the grace
	} {
		t.Run(tc.part, func(t *testing.T) {
			in := newInstall(t)
			cfg := in.config(t, tc.part)
			if tc.grace > 0 {
				cfg.StopGrace = tc.grace
			}
			r := Run(context.Background(), cfg, in.trial(t, tc.window))
			if r.End != RolledBack || r.Report.Outcome != wire.ReasonRolledBack || r.Report.Detail != tc.detail {
				t.Fatalf("result %+v, want rolled back: %q", r, tc.detail)
			}
			in.checkUntouched(t)
			if o := outcome(t, in.state); o == nil || o.Reported || o.Report.Detail != tc.detail || o.Report.Rollout != "3f9a0c1b2d4e" {
				t.Errorf("recorded outcome %+v", o)
			}
			if tc.part == "silent" && len(stopped(t, in.state)) != 1 {
				t.Error("the silent child was not stopped through its stdin")
			}
		})
	}
}

// TestTrialChecksStagedBinary: an EXE.new that is not the release's (it
// changed after staging) is never started.
func TestTrialChecksStagedBinary(t *testing.T) {
	in := newInstall(t)
	tr := in.trial(t, time.Minute)
	f, _ := os.OpenFile(in.p.New, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("appended"))
	f.Close()
	r := Run(context.Background(), in.config(t, "silent"), tr)
	if r.End != RolledBack || !strings.Contains(r.Report.Detail, "the staged binary is not the release's") {
		t.Fatalf("result %+v", r)
	}
	in.checkUntouched(t)
	if started(t, in.state) != 0 {
		t.Error("the changed binary was started")
	}
}

// TestTrialInterrupted: a watchdog stopped during the trial stops the
// child and leaves the trial to resume: EXE.new and the state stay, and
// the start is given back, since it did not fail.
func TestTrialInterrupted(t *testing.T) {
	in := newInstall(t)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runAsync(ctx, in.config(t, "silent"), in.trial(t, time.Hour))
	waitFor(t, time.Minute, "the child's start", func() bool { return started(t, in.state) == 1 })
	cancel()
	if r := wait(); r.End != Interrupted {
		t.Fatalf("result %+v, want interrupted", r)
	}
	tr, err := LoadTrial(in.state)
	if err != nil || tr == nil || tr.Starts != 0 || tr.Phase != PhaseTrial { // an orderly stop gives the start back
		t.Fatalf("trial state %+v, %v", tr, err)
	}
	if _, err := os.Stat(in.p.New); err != nil {
		t.Fatalf("EXE.new: %v", err)
	}
	if len(stopped(t, in.state)) != 1 {
		t.Error("the child was not stopped through its stdin")
	}
}

// TestTrialResumesAfterWatchdogKilled: the watchdog process is killed
// mid-trial; its child stops as its stdin ends, and the next start (the
// old binary again) resumes the trial, counting the lost start, and
// commits the child that then checks in.
func TestTrialResumesAfterWatchdogKilled(t *testing.T) {
	in := newInstall(t)
	in.trial(t, time.Hour)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wd := exec.Command(self, "run", "--state", in.state)
	wd.Env = append(os.Environ(), helperEnv+"=watchdog", childEnv+"=silent")
	if err := wd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wd.Process.Kill(); wd.Wait() })
	waitFor(t, time.Minute, "the child's start", func() bool { return started(t, in.state) == 1 })
	wd.Process.Kill() // as a crash or a reboot would
	wd.Wait()
	waitFor(t, time.Minute, "the orphaned child to stop", func() bool { return len(stopped(t, in.state)) == 1 })
	tr, err := LoadTrial(in.state)
	if err != nil || tr == nil || tr.Starts != 1 {
		t.Fatalf("trial state after the kill: %+v, %v", tr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := runAsync(ctx, in.config(t, "healthy"), tr)
	waitFor(t, time.Minute, "the commit", func() bool { o, _ := LoadOutcome(in.state); return o != nil })
	cancel()
	if r := wait(); r.End != Committed {
		t.Fatalf("result %+v", r)
	}
	in.checkCommitted(t)
	if _, err := os.Stat(filepath.Join(in.state, "healthy-at-start-2")); err != nil {
		t.Error("the resumed trial did not count the lost start: no child was healthy at start 2")
	}
}

// TestTrialResumes: what a start finds from a watchdog that died decides
// what it does: past the window or out of starts, it rolls back without
// starting anything; in the middle of a commit or a rollback, it
// finishes it.
func TestTrialResumes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*Trial)
		end    End
		detail string
	}{
		{"past the window", func(tr *Trial) { tr.Starts, tr.Deadline = 1, time.Now().Add(-time.Second) }, RolledBack, "no check-in within 1m0s"},
		{"out of starts", func(tr *Trial) { tr.Starts, tr.LastExit, tr.LastLine = 3, "exited with status 1", "boom" },
			RolledBack, "exited with status 1 three times at start (last line: boom)"},
		{"rolling back", func(tr *Trial) { tr.Phase, tr.Detail = PhaseRollingBack, "no check-in within 1m0s" }, RolledBack, "no check-in within 1m0s"},
		{"committing", func(tr *Trial) { tr.Phase = PhaseCommitting }, Committed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInstall(t)
			tr := in.trial(t, time.Minute)
			tc.edit(tr)
			tr.Save(in.state)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// After a commit the committed EXE runs, not on trial any
			// more: silent, until the watchdog stops.
			wait := runAsync(ctx, in.config(t, "silent"), tr)
			if tc.end == Committed {
				waitFor(t, time.Minute, "the committed binary's start", func() bool { return started(t, in.state) == 1 })
				cancel()
			}
			r := wait()
			if r.End != tc.end || r.Report.Detail != tc.detail {
				t.Fatalf("result %+v, want %v %q", r, tc.end, tc.detail)
			}
			if tc.end == Committed {
				in.checkCommitted(t)
				return
			}
			in.checkUntouched(t)
			if started(t, in.state) != 0 {
				t.Error("a child was started")
			}
		})
	}
}

// started counts the silent children that started in state.
func started(t *testing.T, state string) int {
	m, _ := filepath.Glob(filepath.Join(state, "started-*"))
	return len(m)
}

// stopped lists the silent children that saw their stdin end.
func stopped(t *testing.T, state string) []string {
	m, _ := filepath.Glob(filepath.Join(state, "stopped-*"))
	return m
}

// TestTrialCommitFails: a healthy child whose binary cannot be put in
// place (no rename onto EXE works, not even the undo of renaming EXE
// aside) is stopped and rolled back with EXE holding the old binary.
func TestTrialCommitFails(t *testing.T) {
	in := newInstall(t)
	failRename(t, func(_, to string) bool { return to == in.p.Exe })
	r := Run(context.Background(), in.config(t, "healthy"), in.trial(t, time.Minute))
	if r.End != RolledBack || r.Report.Outcome != wire.ReasonRolledBack || !strings.Contains(r.Report.Detail, "could not put it in place") {
		t.Fatalf("result %+v, want a rollback because the commit failed", r)
	}
	in.checkUntouched(t)
	if o := outcome(t, in.state); o == nil || o.Report.Outcome != wire.ReasonRolledBack || o.Reported {
		t.Errorf("outcome %+v", o)
	}
}
