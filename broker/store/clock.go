package store

import (
	"cmp"
	"fmt"
	"math"
	"strings"
	"time"
)

// Clock is a hybrid logical clock reading: the writer's wall clock in Unix
// milliseconds, a counter that orders writes within one millisecond (or
// while the wall clock lags a clock already seen), and the name of the
// broker that wrote. Clocks are totally ordered by wall, then counter, then
// origin, and no two writes carry the same clock: each broker's clock only
// moves forward and broker names are unique in a cluster.
//
// Every control record (client, token, technician, admin credential, job)
// carries the clock of its last write; the later clock wins a conflict
// (for jobs, only between copies equally far along: see mergeJob).
type Clock struct {
	Wall    int64  `json:"wall_ms"`
	Counter uint32 `json:"counter"`
	Origin  string `json:"origin"`
}

// Compare returns -1, 0 or +1 as c is before, equal to or after d.
func (c Clock) Compare(d Clock) int {
	if r := cmp.Compare(c.Wall, d.Wall); r != 0 {
		return r
	}
	if r := cmp.Compare(c.Counter, d.Counter); r != 0 {
		return r
	}
	return strings.Compare(c.Origin, d.Origin)
}

// After reports whether c is later than d.
func (c Clock) After(d Clock) bool { return c.Compare(d) > 0 }

// IsZero reports whether c is the zero clock (never written).
func (c Clock) IsZero() bool { return c == Clock{} }

// Time is the clock's wall time.
func (c Clock) Time() time.Time { return time.UnixMilli(c.Wall).UTC() }

func (c Clock) String() string {
	return fmt.Sprintf("%s+%d@%s", c.Time().Format("2006-01-02T15:04:05.000Z"), c.Counter, c.Origin)
}

// hlc is this broker's hybrid logical clock. It is owned by the writer
// goroutine (and by Open before the writer starts), so it needs no lock.
type hlc struct {
	origin string
	now    func() time.Time

	wall    int64  // the newest wall time issued or seen
	counter uint32 // the counter that went with it
}

// tick returns a clock later than every clock issued or observed so far.
func (h *hlc) tick() Clock {
	pt := h.now().UnixMilli()
	switch {
	case pt > h.wall:
		h.wall, h.counter = pt, 0
	case h.counter == math.MaxUint32:
		h.wall, h.counter = h.wall+1, 0
	default:
		h.counter++
	}
	return Clock{Wall: h.wall, Counter: h.counter, Origin: h.origin}
}

// observe moves the clock past c, so the next local write wins over
// every write this broker has seen.
func (h *hlc) observe(c Clock) {
	if c.Wall > h.wall || c.Wall == h.wall && c.Counter > h.counter {
		h.wall, h.counter = c.Wall, c.Counter
	}
}
