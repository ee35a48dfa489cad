package collect

import (
	"math"
	"sync"
	"time"
)

// Windows has no load average. Load1 there is the share of CPU time spent
// busy, from GetSystemTimes, smoothed over about a minute so it reads
// like Linux's one-minute load divided by the CPU count: 1.0 means every
// core busy. It measures CPU use only, where Linux's load also counts
// tasks waiting for disk.

// loadWindow is the time constant of the smoothing: a change in CPU use
// shows two thirds of its size after a minute, as in the kernel's
// one-minute load.
const loadWindow = time.Minute

// cpuTimes is a GetSystemTimes sample: 100 ns units summed over every
// processor since boot. Kernel includes idle.
type cpuTimes struct {
	idle, kernel, user uint64
}

// busyFraction returns the share of the time between two samples that
// the processors were busy. ok is false when no time passed (two samples
// within one clock tick) or a counter went back.
func busyFraction(prev, cur cpuTimes) (busy float64, ok bool) {
	if cur.idle < prev.idle || cur.kernel < prev.kernel || cur.user < prev.user {
		return 0, false
	}
	idle := cur.idle - prev.idle
	total := (cur.kernel - prev.kernel) + (cur.user - prev.user)
	if total == 0 || idle > total {
		return 0, false
	}
	return float64(total-idle) / float64(total), true
}

// busyAverage smooths busy fractions over calls with an exponentially
// weighted average whose weight follows the time between samples, so
// calls at any rate read the same.
type busyAverage struct {
	mu     sync.Mutex // guards the following fields
	primed bool       // avg holds at least one interval
	prev   cpuTimes
	prevAt time.Time // when prev was taken; zero before the first sample
	avg    float64
}

// add records a sample taken at now. It returns the average and true, or
// false while there is no interval to average yet (the first sample, or
// a second one no clock tick after it). A sample within the same tick as
// the previous one returns the average unchanged and keeps the previous
// sample, so the next interval covers the whole time; counters that went
// back (they never should) restart from this sample.
func (b *busyAverage) add(t cpuTimes, now time.Time) (float64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.prevAt.IsZero() {
		b.prev, b.prevAt = t, now
		return 0, false
	}
	busy, ok := busyFraction(b.prev, t)
	if !ok {
		if t.idle < b.prev.idle || t.kernel < b.prev.kernel || t.user < b.prev.user {
			b.prev, b.prevAt = t, now
		}
		return b.avg, b.primed
	}
	if !b.primed {
		b.avg, b.primed = busy, true // start at the first interval, not at 0
	} else {
		dt := max(now.Sub(b.prevAt), 0)
		weight := 1 - math.Exp(-float64(dt)/float64(loadWindow))
		b.avg += weight * (busy - b.avg)
	}
	b.prev, b.prevAt = t, now
	return b.avg, true
}
