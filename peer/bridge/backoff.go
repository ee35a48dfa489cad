package bridge

import (
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays with full jitter: the n-th delay is
// uniform in [0, min(Max, Min·2ⁿ)]. When a broker fails, every agent it
// held reconnects at once; drawing each delay from the whole window, not
// only its upper half, spreads a thousand agents' retries the most evenly
// and brings them back soonest on average (equal jitter, the upper half,
// keeps half the window empty and every agent waiting at least that long).
type Backoff struct {
	// Min is the first delay's upper bound. Zero means 500 ms.
	Min time.Duration
	// Max caps the window. Zero means 30 s.
	Max time.Duration
	// Rand, if not nil, draws a uniform integer in [0, n) for the jitter;
	// tests set it to make delays deterministic. Nil means math/rand/v2's
	// global source.
	Rand func(n int64) int64

	attempt int // owned by the caller's goroutine
}

// Next returns the delay before the next attempt and advances.
func (b *Backoff) Next() time.Duration {
	ceil := b.ceiling()
	b.attempt++
	draw := b.Rand
	if draw == nil {
		draw = rand.Int64N
	}
	return time.Duration(draw(int64(ceil) + 1))
}

// ceiling is the current window's upper bound: Min doubled once per
// attempt, capped at Max.
func (b *Backoff) ceiling() time.Duration {
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
	return min(d, hi)
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.attempt = 0 }
