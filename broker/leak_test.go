package broker

import (
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// oneSession exercises every protocol once and leaves a presence stream open,
// so shutdown has live streams to tear down. Cleanups stop everything.
func oneSession(t *testing.T) {
	tb := startBroker(t)
	admin, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	if ack := agent.checkIn(1, testSnapshot("desk-01")); ack.Error != nil {
		t.Fatal(ack.Error)
	}
	ps, reply := agent.openPresence(wire.Hello{MachineID: agent.ID(), AgentVersion: "0.1.0"})
	if reply.Error != nil {
		t.Fatal(reply.Error)
	}
	ps.beat(t, wire.Heartbeat{Seq: 1, Load1: 0.3})
	if !online(admin, agent.ID()) {
		t.Fatal("agent not online")
	}
	// A silent second agent, cut off by the heartbeat timeout.
	quiet := tb.agent(t, tok, "desk-02")
	quiet.openPresence(wire.Hello{MachineID: quiet.ID(), AgentVersion: "0.1.0"})
	waitFor(t, 2*time.Second, "silent agent offline", func() bool { return !online(admin, quiet.ID()) })
}

// TestNoGoroutineLeak: once Run has returned and the clients are closed,
// the goroutine count settles back to where it started. A first session
// warms up the process-wide goroutines of libp2p and quic-go, which live as
// long as the process.
func TestNoGoroutineLeak(t *testing.T) {
	t.Run("warm-up", oneSession)
	base := settledGoroutines(500 * time.Millisecond)
	t.Run("session", oneSession)
	const slack = 2
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for n > base+slack && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > base+slack {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("%d goroutines 5s after shutdown, %d before the session:\n%s", n, base, b.String())
	}
}

// settledGoroutines waits until the goroutine count stops changing for
// quiet and returns it (bounded by 5 s).
func settledGoroutines(quiet time.Duration) int {
	n, since := runtime.NumGoroutine(), time.Now()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
		if m := runtime.NumGoroutine(); m != n {
			n, since = m, time.Now()
		} else if time.Since(since) >= quiet {
			break
		}
	}
	return n
}
