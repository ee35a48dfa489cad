package store

import (
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestUncleanEndReplicates: a check-in that reports an unclean end (the
// 0.4.0 reason, with its history detail) and a quiet check-in replicate
// to another broker, which derives the card's unclean end from the
// snapshot as the first did.
func TestUncleanEndReplicates(t *testing.T) {
	src, b := newBroker(t, "east", 10), newBroker(t, "west", 10)
	a := src.Store
	mustClient(t, a, "acme")
	mustEnroll(t, a, mustToken(t, a, "acme", 2, brokerStart.Add(time.Hour)), "m1", "web1")
	snap := testSnapshot("m1", 1)
	snap.LastUncleanEnd = &wire.RunEnd{At: t0.Add(-time.Minute), Detail: "panic: boom"}
	ci := checkIn("m1", 1, snap)
	ci.Reason = wire.ReasonUnclean
	mustCheckIn(t, a, ci, t0)
	quiet := checkIn("m1", 2, snap)
	quiet.Reason = wire.ReasonQuiet
	mustCheckIn(t, a, quiet, t0.Add(time.Minute))
	if n := pull(t, b.Store, a); n == 0 {
		t.Fatal("nothing replicated")
	}
	m, ok := b.Machine("m1")
	if !ok || m.LastUncleanEnd == nil || m.LastUncleanEnd.Detail != "panic: boom" {
		t.Fatalf("replicated machine %+v, want its unclean end", m.LastUncleanEnd)
	}
	h, err := b.History("m1")
	if err != nil || len(h) != 2 || h[0].Reason != wire.ReasonQuiet || h[1].Reason != wire.ReasonUnclean || h[1].Detail != "panic: boom" {
		t.Fatalf("replicated history %+v, %v", h, err)
	}
}

// TestHistoryDetailBounded: an imported history item's detail longer
// than a card line is refused, and nothing is stored.
func TestHistoryDetailBounded(t *testing.T) {
	src, b := newBroker(t, "east", 10), newBroker(t, "west", 10)
	a := src.Store
	mustClient(t, a, "acme")
	mustEnroll(t, a, mustToken(t, a, "acme", 2, brokerStart.Add(time.Hour)), "m1", "web1")
	pull(t, b.Store, a)
	snap := testSnapshot("m1", 1)
	mustCheckIn(t, a, checkIn("m1", 1, snap), t0)
	rec := exportOne(t, a, machineKey("m1"))
	rec.Machine.History[0].Detail = strings.Repeat("x", wire.MaxAwayDetail+1)
	res, err := b.Import([]Record{rec})
	if err == nil && res.Applied > 0 {
		t.Fatalf("a history detail over %d bytes was imported", wire.MaxAwayDetail)
	}
	if m, ok := b.Machine("m1"); !ok || m.LastCheckIn != nil {
		t.Errorf("the refused check-in was stored: %+v", m.LastCheckIn)
	}
}
