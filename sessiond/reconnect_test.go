package sessiond

import (
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/bridge"
)

// TestReconnectWait: after a bridge that was up drops, the first dial
// waits a draw from the broker's window; otherwise the old pacing holds.
func TestReconnectWait(t *testing.T) {
	zero := func(int64) int64 { return 0 }
	bo := bridge.Backoff{Rand: zero}
	if got := reconnectWait(false, 20*time.Second, false, &bo); got != 100*time.Millisecond {
		t.Errorf("a dial that never got up, next broker: waits %s, want 100ms", got)
	}
	if got := reconnectWait(false, 20*time.Second, true, &bo); got != 0 {
		t.Errorf("every broker failed, no bridge was up: waits %s, want the backoff's draw (0)", got)
	}
	if got := reconnectWait(true, 0, false, &bo); got != 100*time.Millisecond {
		t.Errorf("no window from the broker: waits %s, want 100ms", got)
	}
	// Draws from a 20 s window: all in it, and spread over it.
	const draws = 400
	var late int
	for range draws {
		got := reconnectWait(true, 20*time.Second, false, &bo)
		if got < 100*time.Millisecond || got > 20*time.Second {
			t.Fatalf("after a bridge that was up: waits %s, want within [100ms, 20s]", got)
		}
		if got > 10*time.Second {
			late++
		}
	}
	// The chance that fewer than a quarter of 400 uniform draws land in
	// the window's upper half is below 1e-20.
	if late < draws/4 {
		t.Errorf("%d of %d draws in the window's upper half: not spread over the window", late, draws)
	}
}
