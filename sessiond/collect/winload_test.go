package collect

import (
	"math"
	"testing"
	"time"
)

// sec is one second of CPU time in GetSystemTimes' 100 ns units.
const sec = 10_000_000

// cpuClock simulates a machine's GetSystemTimes counters.
type cpuClock struct {
	cores int
	t     cpuTimes
	now   time.Time
}

// run advances the clock by d with the given share of the cores busy,
// half of the busy time in the kernel.
func (c *cpuClock) run(d time.Duration, busy float64) cpuTimes {
	total := uint64(d.Seconds() * float64(c.cores) * sec)
	b := uint64(float64(total) * busy)
	c.t.idle += total - b
	c.t.kernel += total - b + b/2 // kernel time includes idle time
	c.t.user += b - b/2
	c.now = c.now.Add(d)
	return c.t
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestBusyFraction(t *testing.T) {
	prev := cpuTimes{idle: 100 * sec, kernel: 150 * sec, user: 50 * sec}
	for _, tc := range []struct {
		name string
		cur  cpuTimes
		want float64
		ok   bool
	}{
		{"all idle", cpuTimes{idle: 104 * sec, kernel: 154 * sec, user: 50 * sec}, 0, true},
		{"a quarter busy", cpuTimes{idle: 103 * sec, kernel: 154 * sec, user: 50 * sec}, 0.25, true},
		{"all busy", cpuTimes{idle: 100 * sec, kernel: 152 * sec, user: 52 * sec}, 1, true},
		{"no tick", prev, 0, false},
		{"counter back", cpuTimes{idle: 99 * sec, kernel: 160 * sec, user: 60 * sec}, 0, false},
		{"idle beyond total", cpuTimes{idle: 110 * sec, kernel: 151 * sec, user: 50 * sec}, 0, false},
	} {
		got, ok := busyFraction(prev, tc.cur)
		if ok != tc.ok || !near(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBusyAverage(t *testing.T) {
	c := &cpuClock{cores: 4, now: time.Unix(1_700_000_000, 0)}
	var b busyAverage
	if _, ok := b.add(c.run(0, 0), c.now); ok {
		t.Fatal("the first sample gave an average")
	}
	if _, ok := b.add(c.t, c.now.Add(time.Millisecond)); ok {
		t.Fatal("a sample within the same tick gave an average before any interval")
	}
	// The first interval sets the average: a first call does not start at 0.
	if v, ok := b.add(c.run(200*time.Millisecond, 0.5), c.now); !ok || !near(v, 0.5) {
		t.Fatalf("first interval: %v, %v", v, ok)
	}
	// A minute of full load moves it 1-1/e of the way, as the one-minute
	// load average would, whether read every 5 s or once.
	for range 12 {
		b.add(c.run(5*time.Second, 1), c.now)
	}
	v, _ := b.add(c.t, c.now)
	want := 1 - 0.5*math.Exp(-1)
	if !near(v, want) {
		t.Errorf("after a minute at full load read every 5 s: %v, want %v", v, want)
	}
	c2 := &cpuClock{cores: 4, now: time.Unix(1_700_000_000, 0)}
	var once busyAverage
	once.add(c2.run(0, 0), c2.now)
	once.add(c2.run(200*time.Millisecond, 0.5), c2.now)
	if v, _ := once.add(c2.run(time.Minute, 1), c2.now); !near(v, want) {
		t.Errorf("after a minute at full load read once: %v, want %v", v, want)
	}
	// A sample within the same tick changes nothing; counters that went
	// back restart the interval without changing the average.
	before, _ := b.add(c.t, c.now)
	if v, ok := b.add(cpuTimes{}, c.now.Add(time.Second)); !ok || v != before {
		t.Errorf("counters back: %v, %v; want %v", v, ok, before)
	}
	if v, ok := b.add(cpuTimes{idle: 4 * sec, kernel: 4 * sec}, c.now.Add(2*time.Second)); !ok || v >= before {
		t.Errorf("idle second after a restart: %v, %v; want below %v", v, ok, before)
	}
}
