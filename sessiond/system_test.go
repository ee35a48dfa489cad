package sessiond

import (
	"testing"
	"time"
)

// TestSleptBetween: readings of a machine that did not sleep show no
// gap between the clocks; readings without a monotonic part (a wall
// clock alone) show none either.
func TestSleptBetween(t *testing.T) {
	prev := time.Now()
	time.Sleep(20 * time.Millisecond)
	if got := sleptBetween(prev, time.Now()); got.Abs() > time.Second {
		t.Errorf("awake: %v between the clocks", got)
	}
	wall := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	if got := sleptBetween(wall, wall.Add(time.Hour)); got != 0 {
		t.Errorf("wall readings: %v", got)
	}
}
