package sessiond

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestCheckInConflictBounds: a broker that holds a newer check-in makes
// the agent move past it once; a claimed sequence the agent could only
// move to by wrapping its counter is refused, and the counter stays.
func TestCheckInConflictBounds(t *testing.T) {
	agentNet, brokerNet := newVnet(t)
	broker, info := newStandIn(t, brokerNet)
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	enrollOnVnet(ctx, t, state, info, agentNet)
	<-broker.enrolledFrom
	a, err := New(Config{StateDir: state, Net: agentNet, SystemBus: NoSystemBus})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	stored := make(chan uint64, 1)
	broker.host.SetStreamHandler(wire.ProtoCheckIn, func(s network.Stream) {
		defer s.Close()
		// Only the sequence matters here: the snapshot is not validated.
		var ci wire.CheckIn
		raw, err := wire.NewReader(s).ReadRaw(wire.MaxSnapshot)
		if err != nil || json.Unmarshal(raw, &ci) != nil {
			return
		}
		if held := <-stored; ci.Seq <= held {
			stored <- held
			wire.Write(s, &wire.CheckInAck{Seq: held, Error: &wire.Error{Code: wire.CodeConflict, Message: "sequence out of order"}})
			return
		}
		stored <- ci.Seq
		wire.Write(s, &wire.CheckInAck{Seq: ci.Seq, StoredAt: time.Now()})
	})
	ai, err := bridge.AddrInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.host.Connect(ctx, ai); err != nil {
		t.Fatal(err)
	}
	snap := wire.Snapshot{Hostname: "pc-1", CollectedAt: time.Now()}

	stored <- 41 // restored from an older backup: move past it once
	if seq, err := a.send(ctx, ai.ID, wire.ReasonDemand, &snap, nil); err != nil || seq != 42 {
		t.Fatalf("check-in past a stored 41: seq %d, %v; want 42", seq, err)
	}
	<-stored
	stored <- math.MaxUint64
	_, err = a.send(ctx, ai.ID, wire.ReasonDemand, &snap, nil)
	if err == nil || !strings.Contains(err.Error(), "past the") {
		t.Fatalf("check-in against a stored 2^64-1: %v, want refused", err)
	}
	<-stored
	stored <- 42
	if seq, err := a.send(ctx, ai.ID, wire.ReasonDemand, &snap, nil); err != nil || seq <= 42 || seq > 1<<32 {
		t.Fatalf("check-in after the refusal: seq %d, %v; want the counter kept near 42", seq, err)
	}
}
