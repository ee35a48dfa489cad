package bridge

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestBackoffWindow: with the draw pinned to the top and to the bottom of
// its range, the delays are the window's ends: 0 and min(Max, Min·2ⁿ),
// which doubles per attempt, stays at Max, and starts over after Reset.
func TestBackoffWindow(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 3 * time.Second
	want := []time.Duration{100, 200, 400, 800, 1600, 3000, 3000, 3000}
	var asked []int64
	top := Backoff{Min: lo, Max: hi, Rand: func(n int64) int64 { asked = append(asked, n); return n - 1 }}
	bottom := Backoff{Min: lo, Max: hi, Rand: func(int64) int64 { return 0 }}
	for i, w := range want {
		w *= time.Millisecond
		if d := top.Next(); d != w {
			t.Errorf("attempt %d: top of the window %v, want %v", i, d, w)
		}
		if asked[i] != int64(w)+1 {
			t.Errorf("attempt %d: drew from [0, %d), want [0, %d): the window must include its end", i, asked[i], int64(w)+1)
		}
		if d := bottom.Next(); d != 0 {
			t.Errorf("attempt %d: bottom of the window %v, want 0 (full jitter)", i, d)
		}
	}
	top.Reset()
	if d := top.Next(); d != lo {
		t.Errorf("after Reset: %v, want %v", d, lo)
	}
}

// TestBackoffFullJitter draws from a seeded source: at the cap, delays
// cover the whole window [0, Max], not only its upper half, with a mean
// near Max/2; and the mean doubles per attempt until the cap.
func TestBackoffFullJitter(t *testing.T) {
	src := rand.New(rand.NewPCG(1, 2))
	const n = 4000
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	means := make([]time.Duration, 9)
	least, most := hi, time.Duration(0)
	for range n {
		b := Backoff{Min: lo, Max: hi, Rand: src.Int64N}
		for i := range means {
			d := b.Next()
			if d < 0 || d > hi {
				t.Fatalf("attempt %d: %v outside [0, %v]", i, d, hi)
			}
			means[i] += d / n
			if i == len(means)-1 {
				least, most = min(least, d), max(most, d)
			}
		}
	}
	for i := 1; i < 6; i++ { // 100 ms … 3.2 s: below the cap
		if r := float64(means[i]) / float64(means[i-1]); r < 1.8 || r > 2.2 {
			t.Errorf("mean of attempt %d is %.2f× attempt %d's (%v, %v); want about 2×", i, r, i-1, means[i], means[i-1])
		}
	}
	if m := means[len(means)-1]; m < hi*45/100 || m > hi*55/100 {
		t.Errorf("mean delay at the cap %v, want about %v", m, hi/2)
	}
	if least > hi/20 || most < hi*95/100 {
		t.Errorf("delays at the cap span [%v, %v], want about [0, %v]", least, most, hi)
	}
}

func TestBackoffDefaults(t *testing.T) {
	b := Backoff{Rand: func(n int64) int64 { return n - 1 }}
	if d := b.Next(); d != 500*time.Millisecond {
		t.Errorf("first default window ends at %v, want 500ms", d)
	}
	for range 100 {
		b.Next()
	}
	if d := b.Next(); d != 30*time.Second {
		t.Errorf("capped default window ends at %v, want 30s", d)
	}
	var global Backoff // the global source
	for range 100 {
		if d := global.Next(); d < 0 || d > 30*time.Second {
			t.Fatalf("delay %v outside [0, 30s]", d)
		}
	}
}
