package reach

import (
	"testing"
	"time"
)

func TestReconnectSpread(t *testing.T) {
	for _, c := range []struct {
		machines, brokers int
		rate              float64
		want              time.Duration
	}{
		{5000, 1, 500, 20 * time.Second}, // one broker takes all back at 250/s
		{5000, 0, 500, 20 * time.Second}, // no list yet: this broker alone
		{5000, 2, 500, 10 * time.Second}, // its half of the fleet
		{5001, 2, 500, 10004 * time.Millisecond},
		{10, 1, 500, 40 * time.Millisecond},
		{100000, 1, 500, maxReconnectSpread},
		{5000, 1, 0, 0}, // no accept rate: no spread
		{0, 1, 500, 0},
	} {
		if got := reconnectSpread(c.machines, c.brokers, c.rate); got != c.want {
			t.Errorf("reconnectSpread(%d, %d, %g) = %s, want %s", c.machines, c.brokers, c.rate, got, c.want)
		}
	}
}
