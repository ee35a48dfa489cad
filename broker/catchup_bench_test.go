package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// BenchmarkCatchUp measures an empty broker joining a cluster that holds N
// machine records (each enrolled and checked in, ~1.5 KB snapshots): the
// time from its start until its own store serves all N with their
// check-ins. Two real brokers gossip and replicate over loopback.
//
// BenchmarkCatchUpBaselineImport is the floor measured in the same run: the
// same records exported from one store and imported into an empty one in
// process, with no network and no gossip.
func BenchmarkCatchUp(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) {
			seed := seededBroker(b, n)
			for b.Loop() {
				start := time.Now()
				joiner := runClusterBroker(b, "joiner", seed.cluster.LocalAddr())
				waitCaughtUp(b, joiner, n, 5*time.Minute)
				b.ReportMetric(time.Since(start).Seconds(), "s/catch-up")
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
			}
		})
	}
}

func BenchmarkCatchUpBaselineImport(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) {
			seed := seededBroker(b, n)
			var keys []store.Key
			for _, m := range seed.store.Machines() {
				keys = append(keys, store.Key{Kind: store.KindMachine, ID: m.ID})
			}
			for b.Loop() {
				start := time.Now()
				dst, err := store.Open(store.Config{Path: filepath.Join(b.TempDir(), "import.db"), Broker: "baseline"})
				if err != nil {
					b.Fatal(err)
				}
				// Clients and tokens first, as a joining broker gets them.
				ctl := []store.Key{{Kind: store.KindClient, ID: "acme"}}
				recs, err := seed.store.Export(ctl)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := dst.Import(recs); err != nil {
					b.Fatal(err)
				}
				for i := 0; i < len(keys); i += 500 {
					recs, err := seed.store.Export(keys[i:min(i+500, len(keys))])
					if err != nil {
						b.Fatal(err)
					}
					if _, err := dst.Import(recs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/catch-up")
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
				dst.Close()
			}
		})
	}
}

var (
	seedMu    sync.Mutex
	seeds     = map[int]*Broker{}
	seedStops []context.CancelFunc
)

// seededBroker returns a running broker holding n enrolled, checked-in
// machines, made once per size and process.
func seededBroker(b *testing.B, n int) *Broker {
	seedMu.Lock()
	defer seedMu.Unlock()
	if br := seeds[n]; br != nil {
		return br
	}
	br := runClusterBroker(nil, fmt.Sprintf("seed-%d", n), "")
	if err := fleettest.Seed(br.store, "acme", n); err != nil {
		b.Fatal(err)
	}
	seeds[n] = br
	return br
}

// runClusterBroker starts a broker that gossips on loopback (joining join
// unless it is empty) and stops it when the benchmark process ends or, for
// a joiner, when b's cleanup runs.
func runClusterBroker(b *testing.B, name, join string) *Broker {
	cfg := TestConfig(filepath.Join(benchDir(b), name))
	cfg.Name, cfg.Gossip, cfg.GossipProfile = name, "127.0.0.1:0", "local"
	cfg.GossipKeys = [][]byte{[]byte("readymesh-benchmark-gossip-key!!")} // 32 bytes: AES-256, as in production
	cfg.Heartbeat = 5 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if join != "" {
		cfg.Join = []string{join}
	}
	br, err := New(cfg)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		br.Run(ctx, func(wire.BrokerInfo, string) { close(ready) })
	}()
	<-ready
	if b != nil {
		b.Cleanup(func() { cancel(); <-done })
	} else {
		seedStops = append(seedStops, cancel) // seeds live as long as the process
	}
	return br
}

// benchDir is a temporary directory: b's when there is one, else one that
// lives as long as the process (seeds are shared between sub-benchmarks).
func benchDir(b *testing.B) string {
	if b != nil {
		return b.TempDir()
	}
	dir, err := osMkdirTemp()
	if err != nil {
		panic(err)
	}
	return dir
}

// waitCaughtUp polls the joiner's store until it holds n checked-in
// machines.
func waitCaughtUp(b *testing.B, br *Broker, n int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		got := 0
		for _, m := range br.store.Machines() {
			if m.LastCheckIn != nil {
				got++
			}
		}
		if got == n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("joiner did not catch up on %d machines within %s", n, limit)
}

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "readymesh-catchup-") }
