package readiness

import (
	"runtime"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestPhasesTmp(t *testing.T) {
	f := genFleet(100_000, 1)
	a := wire.MachinesArgs{}
	mins := make([]time.Duration, 6)
	for i := range mins {
		mins[i] = time.Hour
	}
	rec := func(i int, d time.Duration) { mins[i] = min(mins[i], d) }
	for range 15 {
		runtime.GC()
		t0 := time.Now()
		q := query{evaluator: newEvaluator(Newest(f.machines), now, Policy{}), ms: f.machines, reach: f.reachOf, args: &a}
		t1 := time.Now()
		in := inScope(f.machines, f.visible, "")
		t2 := time.Now()
		q.build(in)
		t3 := time.Now()
		q.kb.sort(q.keys)
		t4 := time.Now()
		permute(q.out, q.keys)
		t5 := time.Now()
		for i := range f.machines {
			_ = f.reachOf(f.machines[i].ID)
		}
		t6 := time.Now()
		rec(0, t1.Sub(t0)); rec(1, t2.Sub(t1)); rec(2, t3.Sub(t2)); rec(3, t4.Sub(t3)); rec(4, t5.Sub(t4)); rec(5, t6.Sub(t5))
	}
	t.Logf("min: newest %v scope %v build %v sort %v permute %v | reach alone %v", mins[0], mins[1], mins[2], mins[3], mins[4], mins[5])
}
