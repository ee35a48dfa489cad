package readiness

import (
	"runtime"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestAllocTmp(t *testing.T) {
	best := time.Hour
	best2 := time.Hour
	for range 10 {
		runtime.GC()
		t0 := time.Now()
		out := make([]wire.Card, 0, 100_000)
		for i := range 100_000 {
			out = append(out, wire.Card{})
			out[i].ID = "x"
		}
		best = min(best, time.Since(t0))
		runtime.GC()
		t0 = time.Now()
		ks := make([]sortKey, 0, 100_000)
		for i := range 100_000 {
			ks = append(ks, sortKey{idx: int32(i)})
		}
		best2 = min(best2, time.Since(t0))
	}
	t.Logf("alloc+touch cards %v keys %v", best, best2)
}
