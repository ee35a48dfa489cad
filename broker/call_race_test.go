package broker

import (
	"context"
	"testing"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestBridgeCallRace makes many quick request/reply exchanges with
// bridge.Call, the client every agent and technician uses. The broker
// answers as soon as it has read the request and closes its side; every
// call must still return the reply.
func TestBridgeCallRace(t *testing.T) {
	tb := startBroker(t)
	admin := tb.admin(t)
	const calls = 200
	var failed int
	var first error
	for range calls {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		var reply wire.Reply
		err := bridge.Call(ctx, admin.h, admin.broker, wire.ProtoTech, &wire.Request{Op: wire.OpWhoAmI}, &reply, wire.MaxReply)
		cancel()
		switch {
		case err != nil:
			failed++
			if first == nil {
				first = err
			}
		case reply.Error != nil:
			t.Fatalf("whoami: %v", reply.Error)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d bridge.Call exchanges failed although the broker answered; first: %v", failed, calls, first)
	}
}
