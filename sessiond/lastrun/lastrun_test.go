package lastrun

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// clock is a settable clock for Config.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// testLogger writes through t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// bootAt is a boot-time source that says the machine booted at b.
func bootAt(b time.Time) func() (time.Time, error) {
	return func() (time.Time, error) { return b, nil }
}

// open opens dir at the clock's time, the machine booted an hour before
// t0, and closes the run at the end of the test.
func open(t *testing.T, dir string, c *clock) (*Run, Previous) {
	t.Helper()
	r, prev, err := Open(Config{Dir: dir, Now: c.now, BootTime: bootAt(t0.Add(-time.Hour)), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(r.Close)
	return r, prev
}

func readTestMarker(t *testing.T, dir string) marker {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, MarkerFile))
	if err != nil {
		t.Fatal(err)
	}
	var m marker
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFirstRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // Open makes it
	c := &clock{t0}
	_, prev := open(t, dir, c)
	if !prev.First || prev.Clean || prev.Unclean != nil || prev.LastUnclean != nil || prev.Rebooted {
		t.Errorf("first run: %+v", prev)
	}
	if !prev.Booted.Equal(t0.Add(-time.Hour)) {
		t.Errorf("booted %v", prev.Booted)
	}
	if m := readTestMarker(t, dir); !m.Alive.Equal(t0) || m.Stopped || m.PID != os.Getpid() {
		t.Errorf("marker %+v", m)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v %v", st.Mode(), err)
	}
}

func TestCleanStop(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t0}
	r, _ := open(t, dir, c)
	c.t = t0.Add(10 * time.Minute)
	r.Stopped(wire.AwayShutdown)
	r.Close()
	r.Close() // idempotent

	c.t = t0.Add(15 * time.Minute)
	_, prev := open(t, dir, c)
	if !prev.Clean || prev.Reason != wire.AwayShutdown || prev.Unclean != nil || prev.First {
		t.Errorf("after a clean stop: %+v", prev)
	}
	if !prev.LastAlive.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("last alive %v, want the stop", prev.LastAlive)
	}
	if prev.Rebooted {
		t.Error("rebooted, though the machine booted before the run")
	}
}

func TestUncleanEnd(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t0}
	r, _ := open(t, dir, c)
	r.Alive(t0.Add(2 * time.Minute))
	r.Close() // no Stopped: the process went away

	c.t = t0.Add(time.Hour)
	r2, prev := open(t, dir, c)
	want := wire.RunEnd{At: t0.Add(2 * time.Minute), Detail: NoExitRecorded}
	if prev.Clean || prev.First || prev.Unclean == nil || *prev.Unclean != want {
		t.Fatalf("after an unclean end: %+v unclean %+v", prev, prev.Unclean)
	}
	if prev.LastUnclean == nil || *prev.LastUnclean != want {
		t.Errorf("last unclean %+v", prev.LastUnclean)
	}

	// The newest unclean end outlives the clean runs that follow.
	r2.Stopped(wire.AwayStopped)
	r2.Close()
	c.t = t0.Add(2 * time.Hour)
	_, prev = open(t, dir, c)
	if !prev.Clean || prev.Unclean != nil || prev.LastUnclean == nil || *prev.LastUnclean != want {
		t.Errorf("clean run after an unclean one: %+v last unclean %+v", prev, prev.LastUnclean)
	}
}

func TestAliveEvery(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t0}
	r, _ := open(t, dir, c) // Every: 1 minute
	r.Alive(t0.Add(30 * time.Second))
	if m := readTestMarker(t, dir); !m.Alive.Equal(t0) {
		t.Errorf("refreshed after 30 s: %v", m.Alive)
	}
	r.Alive(t0.Add(time.Minute))
	if m := readTestMarker(t, dir); !m.Alive.Equal(t0.Add(time.Minute)) {
		t.Errorf("not refreshed after a minute: %v", m.Alive)
	}

	// After Stopped, Alive leaves the stop alone; Resumed undoes it.
	c.t = t0.Add(90 * time.Second)
	r.Stopped(wire.AwayAsleep)
	r.Alive(t0.Add(5 * time.Minute))
	if m := readTestMarker(t, dir); !m.Stopped || m.Reason != wire.AwayAsleep || !m.Alive.Equal(c.t) {
		t.Errorf("after Stopped and Alive: %+v", m)
	}
	c.t = t0.Add(8 * time.Hour)
	r.Resumed()
	if m := readTestMarker(t, dir); m.Stopped || m.Reason != "" || !m.Alive.Equal(c.t) {
		t.Errorf("after Resumed: %+v", m)
	}
	r.Alive(c.t.Add(time.Minute))
	if m := readTestMarker(t, dir); !m.Alive.Equal(c.t.Add(time.Minute)) {
		t.Errorf("Alive after Resumed: %+v", m)
	}
	r.Close()
	r.Alive(c.t.Add(time.Hour))
	if m := readTestMarker(t, dir); !m.Alive.Equal(c.t.Add(time.Minute)) {
		t.Errorf("Alive after Close wrote %v", m.Alive)
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stop  bool
		clean bool
	}{
		{"unclean", false, false},
		{"after a clean stop", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := &clock{t0}
			r, _ := open(t, dir, c)
			if tc.stop {
				r.Stopped(wire.AwayStopped)
			}
			r.Close()
			status := filepath.Join(dir, ExitStatusFile)
			if err := os.WriteFile(status, []byte("killed by signal KILL\nmore\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, prev := open(t, dir, c)
			if _, err := os.Stat(status); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("exit status not deleted: %v", err)
			}
			if prev.Clean != tc.clean {
				t.Fatalf("clean %v, want %v", prev.Clean, tc.clean)
			}
			if !tc.clean && (prev.Unclean == nil || prev.Unclean.Detail != "killed by signal KILL") {
				t.Errorf("unclean %+v", prev.Unclean)
			}
		})
	}
}

func TestReboot(t *testing.T) {
	alive := t0.Add(10 * time.Minute)
	for _, tc := range []struct {
		name     string
		boot     func() (time.Time, error)
		rebooted bool
	}{
		{"same boot", bootAt(t0.Add(-time.Hour)), false},
		{"booted since", bootAt(alive.Add(3 * time.Minute)), true},
		{"boot time unknown", func() (time.Time, error) { return time.Time{}, errors.New("no /proc") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := &clock{t0}
			r, _ := open(t, dir, c)
			c.t = alive
			r.Stopped(wire.AwayShutdown)
			r.Close()

			c.t = alive.Add(5 * time.Minute)
			r2, prev, err := Open(Config{Dir: dir, Now: c.now, BootTime: tc.boot, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			if prev.Rebooted != tc.rebooted {
				t.Errorf("rebooted %v, want %v (booted %v, last alive %v)", prev.Rebooted, tc.rebooted, prev.Booted, prev.LastAlive)
			}
			if b, err := tc.boot(); (err == nil) != !prev.Booted.IsZero() || !prev.Booted.Equal(b) {
				t.Errorf("booted %v, source said %v %v", prev.Booted, b, err)
			}
		})
	}
}

func TestCorruptMarker(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, MarkerFile)
	if err := os.WriteFile(path, []byte("{\"alive\":"), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := t0.Add(-3 * time.Minute)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	_, prev := open(t, dir, &clock{t0})
	if prev.First || prev.Clean || prev.Unclean == nil || !prev.Unclean.At.Equal(mtime) || prev.Unclean.Detail != NoExitRecorded {
		t.Errorf("corrupt marker: %+v unclean %+v", prev, prev.Unclean)
	}
}

func TestCrashFileAfterStop(t *testing.T) {
	// A panic while shutting down, after Stopped, is still a crash.
	dir := t.TempDir()
	c := &clock{t0}
	r, _ := open(t, dir, c)
	r.Stopped(wire.AwayStopped)
	r.Close()
	crash := "panic: close of closed channel\n\ngoroutine 9 [running]:\nmain.stop()\n"
	if err := os.WriteFile(filepath.Join(dir, CrashFile), []byte(crash), 0o600); err != nil {
		t.Fatal(err)
	}
	_, prev := open(t, dir, c)
	if prev.Clean || prev.Unclean == nil || prev.Unclean.Detail != "panic: close of closed channel" {
		t.Errorf("panic after stop: %+v unclean %+v", prev, prev.Unclean)
	}
	kept, err := os.ReadFile(filepath.Join(dir, PreviousCrashFile))
	if err != nil || string(kept) != crash {
		t.Errorf("previous crash output %q %v", kept, err)
	}
	if st, err := os.Stat(filepath.Join(dir, CrashFile)); err != nil || st.Size() != 0 {
		t.Errorf("crash file for this run: %v %v", st, err)
	}
}

func TestCrashLine(t *testing.T) {
	long := "panic: " + strings.Repeat("é", 200)
	for _, tc := range []struct{ out, want string }{
		{"panic: boom\n\ngoroutine 7 [running]:\n", "panic: boom"},
		{"runtime: goroutine stack exceeds 1000000000-byte limit\nruntime: sp=0xc0200e0398\nfatal error: stack overflow\n", "fatal error: stack overflow"},
		{"\n\nSIGQUIT: quit\nPC=0x46b0e1 m=0 sigcode=0\n", "SIGQUIT: quit"},
		{"panic: bad \xff byte\n", "panic: bad \uFFFD byte"},
		// A runtime fatal error's message is not in the crash output.
		{"\nruntime stack:\nruntime.throw({0x588517?, 0x200000001?})\n\t/usr/local/go/src/runtime/panic.go:1229 +0x48\n" +
			"runtime.newstack()\n\t/usr/local/go/src/runtime/stack.go:1207 +0x5fd\n\n" +
			"goroutine 20 gp=0x11c15ff8a5a0 m=0 mp=0x6d7e20 [running]:\nmain.(*conn).recurse(0x15505?)\n\t/src/main.go:3 +0x2b\n" +
			"created by main.main in goroutine 1\n",
			"fatal error in main.(*conn).recurse (its message went to standard error only)"},
		{"runtime stack:\nruntime.throw(...)\n", "fatal error in runtime.throw (its message went to standard error only)"},
		{"", ""},
		{long, long[:wire.MaxAwayDetail-1]}, // cut before a split rune
	} {
		got := crashLine(tc.out)
		if got != tc.want {
			t.Errorf("crashLine(%.40q) = %q, want %q", tc.out, got, tc.want)
		}
		if len(got) > wire.MaxAwayDetail {
			t.Errorf("crashLine(%.40q) is %d bytes", tc.out, len(got))
		}
	}
}
