package bridge

import (
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays: exponential from Min to Max with
// jitter, so a thousand agents that lost the same broker at the same moment
// spread their reconnects over the whole window instead of arriving
// together.
type Backoff struct {
	// Min is the first delay's upper bound. Zero means 500 ms.
	Min time.Duration
	// Max caps the delay. Zero means 30 s.
	Max time.Duration

	attempt int // owned by the caller's goroutine
}

// Next returns the delay before the next attempt and advances.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 500 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	d := lo
	for i := 0; i < b.attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	b.attempt++
	// Equal jitter: uniform in [d/2, d], so retries spread out yet never spin.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.attempt = 0 }
