package density

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// Bounds on one measurement.
const (
	measureLimit = 6 * time.Minute  // the whole measurement
	onlineLimit  = 2 * time.Minute  // for the broker to count every agent online
	ackLimit     = 30 * time.Second // for every first heartbeat to be acked
)

// result is one density measurement: a server process's memory settled
// before and after n idle peers connected.
type result struct {
	n             int
	before, after settled
	connect       time.Duration // from the first dial to all n counted online
}

// per returns (after − before)/n for the field f picks.
func (r result) per(f func(memStat) float64) float64 {
	return (f(r.after.memStat) - f(r.before.memStat)) / float64(r.n)
}

func heapOf(m memStat) float64       { return m.Heap }
func allocOf(m memStat) float64      { return m.Alloc }
func rssOf(m memStat) float64        { return m.RSS }
func stackOf(m memStat) float64      { return m.Stack }
func goroutinesOf(m memStat) float64 { return m.Goroutines }

func (r result) String() string {
	note := ""
	if !r.before.SawGC || !r.after.SawGC {
		note = " (fewer than two GC cycles within the settle bound: heap may include garbage)"
	}
	return fmt.Sprintf("n=%d heap %.1f→%.1f MB rss %.1f→%.1f MB goroutines %.0f→%.0f; each: %.0f heap B (%.0f in objects), %.0f RSS B, %.0f stack B, %.1f goroutines; up in %s; settle scrapes %d/%d%s",
		r.n, r.before.Heap/1e6, r.after.Heap/1e6, r.before.RSS/1e6, r.after.RSS/1e6,
		r.before.Goroutines, r.after.Goroutines,
		r.per(heapOf), r.per(allocOf), r.per(rssOf), r.per(stackOf), r.per(goroutinesOf),
		r.connect.Round(time.Millisecond), r.before.Scrapes, r.after.Scrapes, note)
}

// measureBridge starts a broker on a copy of fx's store, settles and reads
// its memory, brings n of fx's agents' presence streams up over QUIC, and
// reads it again. The broker and the agents are gone when it returns.
func measureBridge(tb testing.TB, fx *fixture, n int) (result, error) {
	if n > len(fx.keys) {
		return result{}, fmt.Errorf("fixture has %d agents, want %d", len(fx.keys), n)
	}
	// tb.TempDir outlives the processes' cleanups, which print their
	// logs on failure.
	dir := tb.TempDir()
	if err := fx.copyTemplate(filepath.Join(dir, "broker")); err != nil {
		return result{}, err
	}
	b, err := startBroker(tb, filepath.Join(dir, "broker"))
	if err != nil {
		return result{}, err
	}
	var fl *fleet
	defer func() {
		// The broker goes first, killed: its store copy is thrown away,
		// and so it does not write n last-seen times as the agents leave.
		b.kill()
		if fl != nil {
			fl.close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), measureLimit)
	defer cancel()
	r := result{n: n}
	if r.before, err = b.probe.settle(ctx); err != nil {
		return result{}, fmt.Errorf("before: %w", err)
	}
	var quiet [2]memStat // with profiles on only
	if quiet[0], err = b.saveProfiles(ctx, tb, n, "before"); err != nil {
		return result{}, err
	}
	start := time.Now()
	if fl, err = connectFleet(ctx, fx.keys[:n], b.quic); err != nil {
		return result{}, err
	}
	if err := b.probe.waitOnline(ctx, n, onlineLimit); err != nil {
		return result{}, err
	}
	r.connect = time.Since(start)
	if err := waitFor(ctx, ackLimit, func() bool { return fl.acked() == n }); err != nil {
		return result{}, fmt.Errorf("%d of %d first heartbeats acked: %w", fl.acked(), n, err)
	}
	if r.after, err = b.probe.settle(ctx); err != nil {
		return result{}, fmt.Errorf("after: %w", err)
	}
	if quiet[1], err = b.saveProfiles(ctx, tb, n, "after"); err != nil {
		return result{}, err
	}
	if got, err := b.probe.online(ctx); err != nil || got != n {
		return result{}, fmt.Errorf("after settling the broker counts %d online (%v), want %d", got, err, n)
	}
	if err := saveParts(tb, r, quiet); err != nil {
		return result{}, err
	}
	return r, nil
}

// measureTLS does the same for n idle TLS connections to the baseline
// server.
func measureTLS(tb testing.TB, n int) (result, error) {
	s, err := startTLSServer(tb, tb.TempDir())
	if err != nil {
		return result{}, err
	}
	defer s.kill()
	ctx, cancel := context.WithTimeout(context.Background(), measureLimit)
	defer cancel()
	r := result{n: n}
	if r.before, err = s.probe.settle(ctx); err != nil {
		return result{}, fmt.Errorf("before: %w", err)
	}
	start := time.Now()
	conns, err := s.dialIdle(ctx, n)
	if err != nil {
		return result{}, err
	}
	defer closeAll(conns)
	if err := s.probe.waitOnline(ctx, n, onlineLimit); err != nil {
		return result{}, err
	}
	r.connect = time.Since(start)
	if r.after, err = s.probe.settle(ctx); err != nil {
		return result{}, fmt.Errorf("after: %w", err)
	}
	return r, nil
}

// waitFor polls cond every 50 ms for at most limit.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// baselines keeps this process's TLS baseline results by connection
// count, so the bridge benchmark can report its ratio to them.
var baselines struct {
	mu sync.Mutex
	m  map[int][]result
}

func addBaseline(r result) {
	baselines.mu.Lock()
	defer baselines.mu.Unlock()
	if baselines.m == nil {
		baselines.m = map[int][]result{}
	}
	baselines.m[r.n] = append(baselines.m[r.n], r)
}

// baselinePer returns the median per-connection figure of the TLS
// baselines measured at n so far, and whether there were any.
func baselinePer(n int, f func(memStat) float64) (float64, bool) {
	baselines.mu.Lock()
	defer baselines.mu.Unlock()
	var xs []float64
	for _, r := range baselines.m[n] {
		xs = append(xs, r.per(f))
	}
	if len(xs) == 0 {
		return 0, false
	}
	slices.Sort(xs)
	return xs[len(xs)/2], true
}
