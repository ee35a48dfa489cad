package density

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestScratchTiming(t *testing.T) {
	fx := enrolled(t, 1000)
	dir := t.TempDir() + "/c"
	fx.copyTemplate(dir)
	b, err := startBroker(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var tn, tc, ts, th atomic.Int64
	start := time.Now()
	forEach(ctx, 1000, dialWorkers, func(i int) error {
		t0 := time.Now()
		h, err := newAgentHost(fx.keys[i])
		if err != nil {
			return err
		}
		t1 := time.Now()
		if err := h.Connect(ctx, b.quic); err != nil {
			return err
		}
		t2 := time.Now()
		s, err := h.NewStream(ctx, b.quic.ID, wire.ProtoPresence)
		if err != nil {
			return err
		}
		t3 := time.Now()
		wire.Write(s, &wire.Hello{MachineID: h.ID().String()})
		var hr wire.HelloReply
		if err := wire.NewReader(s).Read(wire.MaxControl, &hr); err != nil {
			return err
		}
		t4 := time.Now()
		tn.Add(int64(t1.Sub(t0)))
		tc.Add(int64(t2.Sub(t1)))
		ts.Add(int64(t3.Sub(t2)))
		th.Add(int64(t4.Sub(t3)))
		return nil
	})
	t.Logf("total %v; avg new %v connect %v stream %v hello %v", time.Since(start), time.Duration(tn.Load()/1000), time.Duration(tc.Load()/1000), time.Duration(ts.Load()/1000), time.Duration(th.Load()/1000))
}
