package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
)

// The stand-ins for a new agent binary are this test binary itself,
// copied to EXE.new and started by the watchdog like any new binary: its
// TestMain plays the part helperEnv names instead of running the tests.
// (A Go toolchain to build small programs with is not there when the
// tests run as Windows programs under Wine; the copy is a real process
// started from a real file either way.)
const helperEnv = "UPDATE_TEST_HELPER"

// childEnv names the part the children of a watchdog helper play.
const childEnv = "UPDATE_TEST_CHILD"

func TestMain(m *testing.M) {
	part := os.Getenv(helperEnv)
	if part == "" {
		os.Exit(m.Run())
	}
	os.Exit(helper(part, os.Args[1:]))
}

// platformParts are the parts a platform's own tests add (the children
// of the service on Windows), by name; each plays its part in state.
var platformParts = map[string]func(state string) int{}

// helper plays part with the watchdog's child arguments: run --state DIR.
func helper(part string, args []string) int {
	if len(args) != 3 || args[1] != "--state" {
		fmt.Fprintln(os.Stderr, "helper: want run --state DIR, got", args)
		return 64
	}
	state := args[2]
	trial, exe := FromWatchdog()
	if part != "watchdog" && !trial {
		fmt.Fprintln(os.Stderr, "helper: started without", TrialEnv)
		return 65
	}
	// What the agent's children would inherit, and the executable.
	os.WriteFile(filepath.Join(state, "child-env"), []byte(os.Getenv(TrialEnv)+os.Getenv(ExeEnv)), 0o600)
	os.WriteFile(filepath.Join(state, "child-exe"), []byte(exe), 0o600)
	if play := platformParts[part]; play != nil {
		return play(state)
	}
	switch part {
	case "healthy": // checks in: marks the trial healthy, runs until stdin ends
		t, err := LoadTrial(state)
		if err != nil || t == nil {
			fmt.Fprintln(os.Stderr, "helper: no trial:", err)
			return 66
		}
		os.WriteFile(filepath.Join(state, "healthy-at-start-"+strconv.Itoa(t.Starts)), nil, 0o600)
		if err := MarkHealthy(state, t); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 67
		}
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "healthy-exit3": // checks in, then fails
		t, _ := LoadTrial(state)
		MarkHealthy(state, t)
		return 3
	case "exit2": // a broken build
		fmt.Fprintln(os.Stderr, "starting")
		fmt.Fprintln(os.Stderr, "panic: the new build is broken")
		return 2
	case "silent": // never checks in; says when it started and when stdin ended
		os.WriteFile(filepath.Join(state, "started-"+strconv.Itoa(os.Getpid())), nil, 0o600)
		io.Copy(io.Discard, os.Stdin)
		os.WriteFile(filepath.Join(state, "stopped-"+strconv.Itoa(os.Getpid())), nil, 0o600)
		return 0
	case "stubborn": // never checks in and ignores the end of stdin
		time.Sleep(5 * time.Minute)
		return 0
	case "watchdog": // a watchdog whose children play childEnv's part
		return watchdogHelper(state)
	}
	fmt.Fprintln(os.Stderr, "helper: unknown part", part)
	return 64
}

// watchdogHelper runs the trial in state as a watchdog process would.
func watchdogHelper(state string) int {
	t, err := LoadTrial(state)
	if err != nil || t == nil {
		fmt.Fprintln(os.Stderr, "helper: no trial:", err)
		return 66
	}
	env := append(os.Environ(), helperEnv+"="+os.Getenv(childEnv))
	r := Run(context.Background(), Config{StateDir: state, Args: []string{"run", "--state", state}, Env: env,
		Poll: 20 * time.Millisecond, RestartDelay: 50 * time.Millisecond}, t)
	fmt.Println(r.End)
	return 0
}

// install is an installed agent in a temporary directory: EXE holds the
// old binary's bytes, EXE.new a copy of this test binary (the new one).
type install struct {
	state string
	p     Paths
	old   []byte // EXE's bytes
	sum   string // EXE.new's SHA-256
	size  int64
}

func newInstall(t *testing.T) *install {
	t.Helper()
	dir := testdir.New(t)
	in := &install{state: filepath.Join(dir, "state"), p: PathsFor(filepath.Join(dir, "sessiond"+exeSuffix)),
		old: []byte("the previous agent binary")}
	if err := os.MkdirAll(in.state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in.p.Exe, in.old, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFile(self, in.p.New); err != nil {
		t.Fatal(err)
	}
	in.sum, in.size = fileSum(t, in.p.New)
	return in
}

// trial returns a saved trial of in's EXE.new with a health window of
// window.
func (in *install) trial(t *testing.T, window time.Duration) *Trial {
	t.Helper()
	tr := NewTrial("0.2.0", "0.3.0", window, time.Now())
	tr.Rollout, tr.Exe, tr.SHA256, tr.Size = "3f9a0c1b2d4e", in.p.Exe, in.sum, in.size
	if err := tr.Save(in.state); err != nil {
		t.Fatal(err)
	}
	return tr
}

// config is a watchdog configuration whose children play part.
func (in *install) config(t *testing.T, part string) Config {
	return Config{StateDir: in.state, Args: []string{"run", "--state", in.state},
		Env: append(os.Environ(), helperEnv+"="+part), Stderr: io.Discard,
		Poll: 20 * time.Millisecond, RestartDelay: 50 * time.Millisecond, StopGrace: 5 * time.Second,
		Logger: testLogger(t)}
}

// checkUntouched checks that EXE still holds the old binary and that
// nothing of the update is left: no EXE.new, no trial state.
func (in *install) checkUntouched(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile(in.p.Exe); err != nil || string(b) != string(in.old) {
		t.Errorf("EXE changed: %q, %v", clip(string(b), 40), err)
	}
	if _, err := os.Stat(in.p.New); !os.IsNotExist(err) {
		t.Errorf("EXE.new is still there (%v)", err)
	}
	if tr, err := LoadTrial(in.state); tr != nil || err != nil {
		t.Errorf("trial state left: %+v, %v", tr, err)
	}
}

func fileSum(t *testing.T, path string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), int64(len(b))
}

// waitFor polls cond every 20 ms until it holds, failing the test after
// limit: a bound on a wait, not a timing assertion.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
	}
}
