package pionlog

import (
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLogger returns a logger for tests that writes through t.Log, prefixed
// with name, and goes quiet once the test has finished (pion goroutines may
// log while being stopped). Setting the environment variable debugEnv shows
// debug logs, pion's among them.
func TestLogger(t testing.TB, name, debugEnv string) *slog.Logger {
	w := &tWriter{t: t, prefix: name + ": "}
	t.Cleanup(w.stop)
	level := slog.LevelInfo
	if os.Getenv(debugEnv) != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type tWriter struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex // mu guards done, and keeps each Write whole
	done   bool       // the test has finished: drop further lines
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// CheckLeaks fails t if, once the test's cleanups have run, more
// goroutines remain than when it started (waiting up to 5 s for them to
// end). Goroutines whose stacks contain one of ignore are not counted: a
// library's own timers the test cannot stop. Register it first so that it
// runs last.
func CheckLeaks(t *testing.T, ignore ...string) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if runtime.NumGoroutine() <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		extra := runtime.NumGoroutine() - before
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			for _, ig := range ignore {
				if strings.Contains(g, ig) {
					extra--
					break
				}
			}
		}
		if extra <= 0 {
			return
		}
		t.Errorf("goroutines: %d before, %d after cleanup\n%s", before, runtime.NumGoroutine(), buf[:n])
	})
}
