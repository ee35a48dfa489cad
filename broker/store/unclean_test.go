package store

import (
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestUncleanEnd: the unclean end a snapshot reports is copied into the
// machine record, the check-in that reports it first says how in its
// history item, later check-ins keep reporting it without the detail,
// and a broker that imports the record derives it from the snapshot.
func TestUncleanEnd(t *testing.T) {
	a, _ := enrolled(t, 0, "m1")
	crashed := time.Date(2026, 3, 1, 11, 58, 0, 0, time.FixedZone("", 3600))
	end := &wire.RunEnd{At: crashed, Detail: "panic: runtime error: index out of range [3] with length 3"}

	mustCheckIn(t, a, checkIn("m1", 1, testSnapshot("h", 1)), t0)
	if m, _ := a.Machine("m1"); m.LastUncleanEnd != nil {
		t.Fatalf("unclean end %+v before any", m.LastUncleanEnd)
	}

	snap := testSnapshot("h", 2)
	snap.LastUncleanEnd = end
	ci := checkIn("m1", 2, snap)
	ci.Reason = wire.ReasonUnclean
	mustCheckIn(t, a, ci, t0.Add(time.Minute))
	snap = testSnapshot("h", 3)
	snap.LastUncleanEnd = end
	mustCheckIn(t, a, checkIn("m1", 3, snap), t0.Add(2*time.Minute))

	m, _ := a.Machine("m1")
	if e := m.LastUncleanEnd; e == nil || !e.At.Equal(crashed) || e.At.Location() != time.UTC || e.Detail != end.Detail {
		t.Fatalf("machine's unclean end %+v, want %+v in UTC", e, end)
	}
	if m.LastUncleanEnd == end {
		t.Error("the record shares the caller's RunEnd")
	}
	hist, err := a.History("m1")
	if err != nil {
		t.Fatal(err)
	}
	details := map[uint64]string{}
	for _, it := range hist {
		details[it.Seq] = it.Detail
	}
	if details[2] != end.Detail || details[1] != "" || details[3] != "" {
		t.Errorf("history details %v: want the panic on the unclean-end check-in only", details)
	}

}

// TestUncleanEndImported: a broker that imports a machine record derives
// its unclean end from the snapshot, and drops it when a later snapshot
// no longer reports one.
func TestUncleanEndImported(t *testing.T) {
	a, _ := enrolled(t, 0, "m1")
	b, _ := newStore(t)
	end := &wire.RunEnd{At: t0.Add(-time.Hour), Detail: "killed by signal KILL"}
	snap := testSnapshot("h", 1)
	snap.LastUncleanEnd = end
	mustCheckIn(t, a, checkIn("m1", 1, snap), t0)
	pull(t, b, a)
	if bm, ok := b.Machine("m1"); !ok || bm.LastUncleanEnd == nil || *bm.LastUncleanEnd != *end {
		t.Errorf("imported record: found %v, unclean end %+v, want %+v", ok, bm.LastUncleanEnd, end)
	}
	mustCheckIn(t, a, checkIn("m1", 2, testSnapshot("h", 2)), t0.Add(time.Minute))
	pull(t, b, a)
	if bm, _ := b.Machine("m1"); bm.LastUncleanEnd != nil {
		t.Errorf("imported record kept unclean end %+v after a snapshot without one", bm.LastUncleanEnd)
	}
}
