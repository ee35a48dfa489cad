package density

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// Bounds of the dispatch benchmark.
const (
	dispatchAgents   = 1000
	dispatchPerAgent = 10
	dispatchLimit    = 10 * time.Minute
)

// serveJobs makes every agent of f answer queued jobs at once, as an agent
// whose script takes no time: what is measured is the broker's queue.
func serveJobs(f *fleet) {
	for _, a := range f.agents {
		a.h.SetStreamHandler(wire.ProtoJob, func(s network.Stream) {
			defer s.Close()
			s.SetDeadline(time.Now().Add(time.Minute))
			var req wire.JobRequest
			if err := wire.NewReader(s).Read(wire.MaxControl+64<<10, &req); err != nil {
				s.Reset()
				return
			}
			wire.Write(s, &wire.JobReply{ExitCode: 0, Output: "ok\n"})
		})
	}
}

// checkInAll sends one check-in per agent: the broker runs a machine's
// jobs only after the check-in it makes on connecting.
func checkInAll(ctx context.Context, f *fleet, broker peer.AddrInfo) error {
	seq := uint64(time.Now().UnixNano())
	return forEach(ctx, len(f.agents), dialWorkers, func(i int) error {
		a := f.agents[i]
		ci := wire.CheckIn{MachineID: a.id.String(), Seq: seq, Reason: wire.ReasonRestart, Snapshot: wire.Snapshot{
			CollectedAt: time.Now().UTC(), Hostname: fmt.Sprintf("agent-%05d", i), OS: wire.OS{Family: "linux"},
			AgentVersion: agentVersion}}
		var ack wire.CheckInAck
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := bridge.Call(cctx, a.h, broker.ID, wire.ProtoCheckIn, &ci, &ack, wire.MaxControl); err != nil {
			return fmt.Errorf("agent %d check-in: %w", i, err)
		}
		if ack.Error != nil {
			return fmt.Errorf("agent %d check-in refused: %w", i, ack.Error)
		}
		return nil
	})
}

// BenchmarkQueueDispatch queues 10 jobs for each of 1,000 agents (10k
// jobs) and measures the time until all are done, and the broker's heap
// then: "reconnecting" queues while every agent is away and then brings
// them all back at once (connect, check in, run); "connected", the
// baseline in the same run, queues for agents already connected and
// checked in.
func BenchmarkQueueDispatch(b *testing.B) {
	fx := enrolled(b, dispatchAgents)
	for _, mode := range []string{"connected", "reconnecting"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				s, heap := dispatchOnce(b, fx, mode == "reconnecting")
				b.ReportMetric(s, "s-all-done")
				b.ReportMetric(dispatchAgents*dispatchPerAgent/s, "jobs/s")
				b.ReportMetric(heap/(1<<20), "broker-heap-MiB")
			}
		})
	}
}

func dispatchOnce(b *testing.B, fx *fixture, reconnecting bool) (seconds, heap float64) {
	ctx, cancel := context.WithTimeout(context.Background(), dispatchLimit+5*time.Minute)
	defer cancel()
	dir := b.TempDir()
	if err := fx.copyTemplate(dir); err != nil {
		b.Fatal(err)
	}
	br, err := startBroker(b, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer br.stop()
	c, err := tech.Login(ctx, filepath.Join(dir, "tech"), "", filepath.Join(dir, "admin.credential"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	bring := func() *fleet {
		f, err := connectFleet(ctx, fx.keys, br.quic)
		if err != nil {
			b.Fatal(err)
		}
		serveJobs(f)
		if err := checkInAll(ctx, f, br.quic); err != nil {
			b.Fatal(err)
		}
		return f
	}
	var f *fleet
	if !reconnecting {
		f = bring()
		defer f.close()
	}
	start := time.Now()
	for range dispatchPerAgent {
		a := wire.QueueArgs{Client: "density", Script: "true", Mode: wire.ModeInteractive, ExpiresSec: 3600}
		if err := c.Do(ctx, wire.OpQueueAdd, a, nil); err != nil {
			b.Fatal(err)
		}
	}
	if reconnecting {
		f = bring()
		defer f.close()
	}
	want := dispatchAgents * dispatchPerAgent
	deadline := time.Now().Add(dispatchLimit)
	for {
		var done []wire.Job
		if err := c.Do(ctx, wire.OpQueueList, wire.QueueListArgs{State: "done"}, &done); err != nil {
			b.Fatal(err)
		}
		if len(done) == want {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d jobs done after %s", len(done), want, dispatchLimit)
		}
		time.Sleep(250 * time.Millisecond)
	}
	seconds = time.Since(start).Seconds()
	m, err := br.probe.mem(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return seconds, m.Heap
}
