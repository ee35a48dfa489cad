package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond"
	"github.com/readymesh/readymesh/sessiond/update"
)

// TestResumeTrial: a start that finds a trial an earlier watchdog left
// finishes it before the agent runs: past its window it is rolled back
// (EXE untouched, EXE.new gone, the outcome recorded for the first
// check-in), and a trial state that cannot be read is dropped.
func TestResumeTrial(t *testing.T) {
	for _, tc := range []struct {
		name    string
		write   func(state string, exe update.Paths)
		outcome string // the recorded outcome's detail; "" means none
	}{
		{"none", func(string, update.Paths) {}, ""},
		{"past its window", func(state string, p update.Paths) {
			tr := update.NewTrial("0.2.0", "0.3.0", time.Minute, time.Now().Add(-time.Hour))
			tr.Exe, tr.Starts = p.Exe, 1
			tr.Save(state)
		}, "no check-in within 1m0s"},
		{"unreadable", func(state string, _ update.Paths) {
			os.MkdirAll(update.Dir(state), 0o700)
			os.WriteFile(filepath.Join(update.Dir(state), update.TrialFile), []byte("{"), 0o600)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testdir.New(t)
			state := filepath.Join(dir, "state")
			p := update.PathsFor(filepath.Join(dir, "sessiond"))
			os.WriteFile(p.Exe, []byte("old"), 0o755)
			os.WriteFile(p.New, []byte("new"), 0o755)
			tc.write(state, p)
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			cfg := sessiond.Config{StateDir: state, Logger: log, SystemBus: sessiond.NoSystemBus}
			done, err := resumeTrial(context.Background(), cfg, update.Config{StateDir: state, Logger: log})
			if done || err != nil {
				t.Fatalf("resumeTrial = %v, %v; want the agent to run", done, err)
			}
			if tr, err := update.LoadTrial(state); tr != nil || err != nil {
				t.Errorf("trial state left: %+v, %v", tr, err)
			}
			if b, _ := os.ReadFile(p.Exe); string(b) != "old" {
				t.Error("EXE changed")
			}
			o, _ := update.LoadOutcome(state)
			switch {
			case tc.outcome == "" && o != nil:
				t.Errorf("outcome %+v recorded", o)
			case tc.outcome != "" && (o == nil || o.Reported || o.Report.Detail != tc.outcome):
				t.Errorf("outcome %+v, want %q", o, tc.outcome)
			case tc.outcome != "":
				if _, err := os.Stat(p.New); err == nil {
					t.Error("EXE.new left after the rollback")
				}
			}
		})
	}
}

// TestWatchdogExit: what sessiond run returns after the watchdog.
func TestWatchdogExit(t *testing.T) {
	exit3 := exec.Command(os.Args[0], "-test.run=^$", "-test.bogus").Run() // an *exec.ExitError
	var ee *exec.ExitError
	if !errors.As(exit3, &ee) {
		t.Fatalf("no exit error from a failing command: %v", exit3)
	}
	for _, tc := range []struct {
		r    update.Result
		code int // exit status main exits with
	}{
		{update.Result{End: update.Interrupted}, 0},
		{update.Result{End: update.Committed}, 0},
		{update.Result{End: update.Committed, Exit: ee, ExitCode: ee.ExitCode()}, ee.ExitCode()},
		{update.Result{End: update.Committed, Exit: errors.New("killed"), ExitCode: -1}, 1},
	} {
		if got := exitCode(watchdogExit(tc.r)); got != tc.code {
			t.Errorf("%+v: exit %d, want %d", tc.r, got, tc.code)
		}
	}
}

// TestTrustReleaseKeyUsage: the command needs exactly one key, and a bad
// key changes nothing.
func TestTrustReleaseKeyUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"trust-release-key", "--state", "d"}, 2, "takes one KEY"},
		{[]string{"trust-release-key", "--state", "d", "a", "b"}, 2, "takes one KEY"},
		{[]string{"trust-release-key", "--state", "d", "RWnotakey"}, 1, "public key"},
		{[]string{"trust-release-key", "--state", testdir.New(t), "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"}, 1,
			"is not an enrolled agent's state directory"},
	} {
		_, _, err := run(t, tc.args...)
		if got := exitCode(err); got != tc.code || err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: exit %d, %v; want %d, %q", tc.args, got, err, tc.code, tc.err)
		}
	}
}

// TestStatusShowsUpdates: sessiond status shows the agent's version and
// pinned key, an update on trial and the last update's outcome.
func TestStatusShowsUpdates(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := &sessiond.Status{MachineID: "12D3K", Name: "pc-1", Client: "acme", Broker: "12D3B", SessionPort: 7000,
		Version: "0.3.0", ReleaseKeyID: "5AF94EF57A30DACB",
		Trial: &sessiond.TrialStatus{From: "0.2.0", To: "0.3.0", Rollout: "3f9a0c1b2d4e", Starts: 1, Deadline: at, Phase: update.PhaseTrial},
		LastUpdate: &wire.UpdateReport{From: "0.2.0", To: "0.2.9", Outcome: wire.ReasonRolledBack,
			Detail: "exited with status 2 three times at start", At: at}}
	dir, _ := fakeAgent(t, sessiond.ControlReply{Status: st})
	out, _, err := run(t, "status", "--state", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"agent     0.3.0, release key 5AF94EF57A30DACB\n",
		"update    on trial: 0.2.0 → 0.3.0 (rollout 3f9a0c1b2d4e), start 1, trial, health window ends 2026-03-01T12:00:00Z\n",
		"last update rolled back from 0.2.9: exited with status 2 three times at start, 2026-03-01T12:00:00Z\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status printed\n%s\nwithout %q", out, want)
		}
	}
}
