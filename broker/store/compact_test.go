package store

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// compact is a quiet check-in of snap with its package list left out and
// the hash of list in its place.
func compact(id string, seq uint64, snap wire.Snapshot, list []wire.Package) *wire.CheckIn {
	snap.Packages, snap.PackagesSHA256 = nil, wire.PackagesSHA256(list)
	return &wire.CheckIn{MachineID: id, Seq: seq, Reason: wire.ReasonQuiet, Snapshot: snap}
}

// TestCompactCheckInFilled: a quiet check-in whose package list hash
// matches the stored snapshot's is stored whole, as if it had carried the
// list, and a retry of it is a duplicate.
func TestCompactCheckInFilled(t *testing.T) {
	s, _ := enrolled(t, 0, "m1")
	full := testSnapshot("h", 1)
	mustCheckIn(t, s, checkIn("m1", 1, full), t0)

	next := testSnapshot("h", 1)
	next.CollectedAt = t0.Add(6 * time.Hour)
	next.PendingUpdates = next.PendingUpdates[:1]
	ci := compact("m1", 2, next, full.Packages)
	res := mustCheckIn(t, s, ci, t0.Add(6*time.Hour))
	if res.Duplicate || res.StoredSeq != 2 {
		t.Fatalf("result %+v", res)
	}
	if ci.Snapshot.Packages != nil || ci.Snapshot.PackagesSHA256 == "" {
		t.Error("the caller's check-in was changed")
	}

	stored, err := s.Snapshot("m1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stored.Packages, full.Packages) || stored.PackagesSHA256 != "" {
		t.Errorf("stored snapshot: %d packages, hash %q; want the %d stored before, whole", len(stored.Packages), stored.PackagesSHA256, len(full.Packages))
	}
	if !stored.CollectedAt.Equal(next.CollectedAt) || len(stored.PendingUpdates) != 1 {
		t.Errorf("stored snapshot is not the new one: collected %v, %d pending", stored.CollectedAt, len(stored.PendingUpdates))
	}

	// The digest and the history are a full check-in's.
	whole := next
	whole.Packages = full.Packages
	want, err := s.wholeCheckIn(checkIn("m1", 2, whole))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := s.Machine("m1")
	if m.LastCheckIn.Digest != want.digest || m.LastCheckIn.Reason != wire.ReasonQuiet || len(m.PendingUpdates) != 1 {
		t.Errorf("record: %+v, %d pending; want digest %s", m.LastCheckIn, len(m.PendingUpdates), want.digest)
	}
	hist, err := s.History("m1")
	if err != nil {
		t.Fatal(err)
	}
	if it := hist[0]; it.Seq != 2 || it.Packages != len(full.Packages) || it.Digest != want.digest || it.Reason != wire.ReasonQuiet {
		t.Errorf("history item %+v", it)
	}

	// The same compact check-in again (its ack was lost) is a duplicate.
	before := capture(t, s)
	res = mustCheckIn(t, s, compact("m1", 2, next, full.Packages), t0.Add(7*time.Hour))
	if !res.Duplicate || res.StoredSeq != 2 {
		t.Errorf("retry: %+v, want a duplicate", res)
	}
	assertUnchanged(t, s, before)

	// A further compact check-in fills from the filled one.
	mustCheckIn(t, s, compact("m1", 3, testSnapshot("h", 1), full.Packages), t0.Add(12*time.Hour))
	if hist, _ := s.History("m1"); hist[0].Seq != 3 || hist[0].Packages != len(full.Packages) {
		t.Errorf("third check-in's history item %+v", hist[0])
	}
}

// TestCompactCheckInRefused: a compact snapshot whose hash does not match
// the stored package list, or with nothing stored, is refused with
// ErrNeedFull, and nothing stored changes; an out-of-order one hears of
// its sequence first.
func TestCompactCheckInRefused(t *testing.T) {
	s, _ := enrolled(t, 0, "m1", "m2")
	full := testSnapshot("h", 1)
	mustCheckIn(t, s, checkIn("m1", 5, full), t0)
	changed := testSnapshot("h", 2) // another package list
	if reflect.DeepEqual(changed.Packages, full.Packages) {
		t.Fatal("test snapshots share their package list")
	}

	for _, tc := range []struct {
		name string
		ci   *wire.CheckIn
		want error
	}{
		{"list changed", compact("m1", 6, full, changed.Packages), ErrNeedFull},
		{"nothing stored", compact("m2", 1, full, full.Packages), ErrNeedFull},
		{"out of order", compact("m1", 4, full, changed.Packages), ErrSequence},
		{"same sequence, other list", compact("m1", 5, full, changed.Packages), ErrSequence},
		{"unknown machine", compact("m9", 1, full, full.Packages), ErrUnknownMachine},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := capture(t, s)
			_, err := s.CheckIn(tc.ci, t0.Add(time.Hour))
			if !errors.Is(err, tc.want) {
				t.Fatalf("CheckIn: %v, want %v", err, tc.want)
			}
			assertUnchanged(t, s, before)
		})
	}

	// The agent sends it again whole, and it is stored.
	mustCheckIn(t, s, &wire.CheckIn{MachineID: "m1", Seq: 6, Reason: wire.ReasonQuiet, Snapshot: changed}, t0.Add(time.Hour))
	mustCheckIn(t, s, compact("m1", 7, full, changed.Packages), t0.Add(2*time.Hour))
}

// TestCompactBasisChanged: a compact check-in filled from one stored
// snapshot is refused when another check-in was stored before the
// writer took it.
func TestCompactBasisChanged(t *testing.T) {
	s, _ := enrolled(t, 0, "m1")
	full := testSnapshot("h", 1)
	mustCheckIn(t, s, checkIn("m1", 1, full), t0)
	w, err := s.wholeCheckIn(compact("m1", 3, full, full.Packages))
	if err != nil || w.needFull != nil {
		t.Fatalf("prepare: %v %v", err, w.needFull)
	}
	mustCheckIn(t, s, checkIn("m1", 2, testSnapshot("h", 2)), t0.Add(time.Minute))
	m, _ := s.Machine("m1")
	if err := w.refusal(&m); !errors.Is(err, ErrNeedFull) {
		t.Errorf("refusal after another check-in: %v, want ErrNeedFull", err)
	}
}
