package store

import (
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestLastUpdateReplicates: the update report a check-in carried reaches
// every broker with the machine, and a later check-in without one keeps
// it, so every broker's card says how the machine's last update went.
func TestLastUpdateReplicates(t *testing.T) {
	a, _ := enrolled(t, 0, "m1")
	b, _ := newStore(t)
	ci := checkIn("m1", 1, testSnapshot("h", 1))
	ci.Reason = wire.ReasonRolledBack
	ci.Update = &wire.UpdateReport{From: "0.3.0", To: "0.3.1", Outcome: wire.ReasonRolledBack,
		Detail: "exited with status 2 three times at start", At: t0}
	mustCheckIn(t, a, ci, t0)
	mustCheckIn(t, a, checkIn("m1", 2, testSnapshot("h", 2)), t0.Add(1))
	pull(t, b, a)
	m, ok := b.Machine("m1")
	if !ok || m.LastUpdate == nil || m.LastUpdate.Outcome != wire.ReasonRolledBack || m.LastUpdate.To != "0.3.1" {
		t.Fatalf("the other broker's machine: found %v, last update %+v; want the rolled-back report", ok, m.LastUpdate)
	}
}
