//go:build linux || darwin

package netwatch

import (
	"context"
	"runtime"
	"testing"
)

// TestWatchStopsOnCancel checks that cancelling ctx closes the channel and
// that no goroutine Watch started outlives it. It only listens, in the
// test's own network namespace, and changes nothing.
func TestWatchStopsOnCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := Watch(ctx, Config{Logger: testLogger(t, "watch")})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	drainClosed(t, ch)
	waitGoroutines(t, before)
}
