package checkin_test

import (
	"context"
	"testing"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// send sends ci over the rig's bridge and returns the ack, refused or not.
func (r *rig) send(t *testing.T, ci *wire.CheckIn) wire.CheckInAck {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var ack wire.CheckInAck
	if err := bridge.Call(ctx, r.cli, r.broker.ID(), wire.ProtoCheckIn, ci, &ack, wire.MaxControl); err != nil {
		t.Fatalf("check-in %d: %v", ci.Seq, err)
	}
	return ack
}

// A compact quiet check-in the broker cannot fill is refused with
// need_full_snapshot, and the same check-in sent whole is stored; one it
// can fill is acknowledged and stored whole.
func TestCompactCheckIn(t *testing.T) {
	r := newRig(t)
	pkgs := []wire.Package{{Name: "openssl", Version: "3.0.13"}, {Name: "bash", Version: "5.2.15"}}
	compact := func(seq uint64) *wire.CheckIn {
		snap := r.snap
		snap.PackagesSHA256 = wire.PackagesSHA256(pkgs)
		return &wire.CheckIn{MachineID: r.cli.ID().String(), Seq: seq, Reason: wire.ReasonQuiet, Snapshot: snap}
	}

	if ack := r.send(t, compact(1)); ack.Error == nil || ack.Error.Code != wire.CodeNeedFull {
		t.Fatalf("compact check-in with nothing stored: %+v, want %s", ack.Error, wire.CodeNeedFull)
	}
	whole := compact(1)
	whole.Snapshot.PackagesSHA256, whole.Snapshot.Packages = "", pkgs
	if ack := r.send(t, whole); ack.Error != nil || ack.Seq != 1 {
		t.Fatalf("the same check-in whole: %+v", ack)
	}
	if ack := r.send(t, compact(2)); ack.Error != nil || ack.Seq != 2 {
		t.Fatalf("compact check-in matching the stored list: %+v", ack)
	}
	snap, err := r.st.Snapshot(r.machine.ID)
	if err != nil || len(snap.Packages) != len(pkgs) || snap.PackagesSHA256 != "" {
		t.Fatalf("stored snapshot: %v, %d packages, hash %q", err, len(snap.Packages), snap.PackagesSHA256)
	}
	// Not a quiet check-in: the wire contract refuses it as bad input.
	ci := compact(3)
	ci.Reason = wire.ReasonInterval
	if ack := r.send(t, ci); ack.Error == nil || ack.Error.Code != wire.CodeBadRequest {
		t.Errorf("compact interval check-in: %+v, want %s", ack.Error, wire.CodeBadRequest)
	}
}
