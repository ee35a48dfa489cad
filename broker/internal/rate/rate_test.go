package rate

import (
	"fmt"
	"testing"
	"time"
)

// TestSessionRate: a key gets its burst, then one request per interval;
// other keys are not limited by it.
func TestSessionRate(t *testing.T) {
	r := Limiter{Burst: 10, Every: 200 * time.Millisecond}
	p := "tech"
	now := time.Unix(1000, 0)
	for i := range r.Burst {
		if !r.Allow(p, now) {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	if r.Allow(p, now) {
		t.Fatal("request beyond the burst allowed")
	}
	if !r.Allow("other", now) {
		t.Fatal("another technician was limited too")
	}
	if !r.Allow(p, now.Add(r.Every)) || r.Allow(p, now.Add(r.Every)) {
		t.Fatal("one request per interval after the burst")
	}
}

// TestLimiterBounded: past maxKeys keys, refilled buckets are dropped,
// and a dropped key starts again with a full burst.
func TestLimiterBounded(t *testing.T) {
	r := Limiter{Burst: 2, Every: time.Second}
	now := time.Unix(1000, 0)
	for i := range maxKeys + 1 {
		r.Allow(fmt.Sprint("k", i), now)
	}
	later := now.Add(time.Minute)
	r.Allow("fresh", later)
	r.mu.Lock()
	n := len(r.buckets)
	r.mu.Unlock()
	if n > 2 {
		t.Fatalf("%d buckets kept after the refilled ones were due to go", n)
	}
	allowed := 0
	for range r.Burst + 1 {
		if r.Allow("k0", later) {
			allowed++
		}
	}
	if allowed != r.Burst {
		t.Fatalf("a dropped key made %d requests at once, want its burst of %d", allowed, r.Burst)
	}
}
