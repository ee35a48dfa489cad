package lastrun

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// The crash tests re-run the test binary as a child that opens a run and
// then crashes for real; the parent opens the same directory afterwards.
const (
	envCrashDir  = "LASTRUN_TEST_CRASH_DIR"
	envCrashKind = "LASTRUN_TEST_CRASH_KIND"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCrashDir); dir != "" {
		crashChild(dir, os.Getenv(envCrashKind))
	}
	os.Exit(m.Run())
}

// crashChild opens a run in dir and crashes in another goroutine.
func crashChild(dir, kind string) {
	if _, _, err := Open(Config{Dir: dir}); err != nil {
		os.Stderr.WriteString("child: " + err.Error() + "\n")
		os.Exit(3)
	}
	switch kind {
	case "panic":
		go func() { panic("boom in a goroutine") }()
	case "stack overflow":
		debug.SetMaxStack(1 << 20)
		go recurse(0)
	default:
		os.Exit(4)
	}
	time.Sleep(time.Minute)
	os.Exit(5)
}

func recurse(n int) int { return recurse(n+1) + 1 }

func TestRealCrash(t *testing.T) {
	for _, tc := range []struct{ kind, want string }{
		{"panic", "panic: boom in a goroutine"},
		// The runtime prints a fatal error's message before it turns
		// the crash output on, so the detail names where it died.
		{"stack overflow", "fatal error in github.com/readymesh/readymesh/sessiond/lastrun.recurse (its message went to standard error only)"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashKind+"="+tc.kind)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("child: %v (want exit status 2)\n%s", err, stderr.String())
			}

			r, prev, err := Open(Config{Dir: dir, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if prev.Clean || prev.First || prev.Unclean == nil {
				t.Fatalf("after a crash: %+v", prev)
			}
			if prev.Unclean.Detail != tc.want {
				t.Errorf("detail %q, want %q", prev.Unclean.Detail, tc.want)
			}
			if at := prev.Unclean.At; at.Before(start.Add(-time.Second)) || at.After(time.Now()) {
				t.Errorf("crashed at %v, child ran from %v", at, start)
			}
			kept, err := os.ReadFile(filepath.Join(dir, PreviousCrashFile))
			if err != nil || !strings.Contains(string(kept), "goroutine ") {
				t.Errorf("previous crash output kept: %v\n%s", err, kept)
			}
		})
	}
}
