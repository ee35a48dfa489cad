package netwatch

import (
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

// testLogger returns a logger that writes through t.Log, prefixed.
func testLogger(t *testing.T, prefix string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLogWriter{t, prefix}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tLogWriter struct {
	t      *testing.T
	prefix string
}

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + ": " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// drainClosed reads ch until it is closed, failing the test if that takes
// more than 5 seconds. A real change may race the cancel, so values are
// allowed.
func drainClosed(t *testing.T, ch <-chan Change) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("channel not closed 5s after cancel")
		}
	}
}

// waitGoroutines waits up to 5 seconds for the number of goroutines to
// fall back to before, and fails the test with every stack if it does not.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before Watch, %d after it stopped:\n%s",
				before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
