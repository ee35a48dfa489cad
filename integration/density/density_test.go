package density

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sizesEnv, if set, lists the agent and connection counts to measure
// instead, comma-separated (e.g. "5000,10000"), each at most maxSize.
const sizesEnv = "READYMESH_DENSITY_SIZES"

// maxSize bounds a count from sizesEnv: every agent needs its own loopback
// source address (sourceIP) and one UDP socket in this process.
const maxSize = 50000

// sizes returns the agent and connection counts to measure: 1000 and
// 5000, or only 1000 with -short, or those sizesEnv lists.
func sizes(b *testing.B) []int {
	if env := os.Getenv(sizesEnv); env != "" {
		var out []int
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > maxSize {
				b.Fatalf("%s=%q: want counts from 1 to %d, comma-separated", sizesEnv, env, maxSize)
			}
			out = append(out, n)
		}
		return out
	}
	if testing.Short() {
		b.Log("-short: 5000-agent sizes skipped")
		return []int{1000}
	}
	return []int{1000, 5000}
}

// BenchmarkBridgeDensityBaselineTLS measures what a minimal Go TLS 1.3
// server process holds per idle connection (B/conn). It is declared before
// BenchmarkBridgeDensity so that, in one run, the broker's figures can be
// reported as ratios to it.
func BenchmarkBridgeDensityBaselineTLS(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			r := once(b, func() (result, error) { return measureTLS(b, n) })
			addBaseline(r)
			report(b, r, "conn")
		})
	}
}

// BenchmarkBridgeDensity measures what the broker process holds per
// connected, idle, enrolled agent (B/agent): one QUIC bridge and its
// presence stream each.
func BenchmarkBridgeDensity(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			fx := enrolled(b, n)
			r := once(b, func() (result, error) { return measureBridge(b, fx, n) })
			report(b, r, "agent")
			for _, m := range []struct {
				unit string
				f    func(memStat) float64
			}{{"heap-x-tls", heapOf}, {"rss-x-tls", rssOf}} {
				if base, ok := baselinePer(n, m.f); ok && base > 0 {
					b.ReportMetric(r.per(m.f)/base, m.unit)
				}
			}
		})
	}
}

// once runs measure on the first b.Loop iteration only: one measurement is
// one expensive setup, longer than the default benchtime, so b.Loop stops
// after it (a longer -benchtime only adds empty iterations), and -count
// repeats it.
func once(b *testing.B, measure func() (result, error)) result {
	var r result
	done := false
	for b.Loop() {
		if done {
			continue
		}
		var err error
		if r, err = measure(); err != nil {
			b.Fatal(err)
		}
		done = true
	}
	b.Log(r)
	return r
}

// report reports r's per-peer figures; per is "agent" or "conn".
func report(b *testing.B, r result, per string) {
	b.ReportMetric(r.per(heapOf), "heap-B/"+per)
	b.ReportMetric(r.per(rssOf), "rss-B/"+per)
	b.ReportMetric(r.per(stackOf), "stack-B/"+per)
	b.ReportMetric(r.per(goroutinesOf), "goroutines/"+per)
}

// TestDensityHarness runs both measurements small, so `make test` keeps
// the harness working: the broker must count every agent online, both
// servers must grow by a positive amount per peer, and the harness must
// give back every file descriptor it opened (5000 agents hold 5000 UDP
// sockets; a leak fails the next run).
func TestDensityHarness(t *testing.T) {
	const n = 50
	fx := enrolled(t, n)
	fds := openFDs(t)
	r, err := measureBridge(t, fx, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("broker:", r)
	if r.per(heapOf) <= 0 || r.per(rssOf) <= 0 {
		t.Errorf("broker memory per agent is not positive: %v", r)
	}
	tr, err := measureTLS(t, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("tls:", tr)
	if tr.per(heapOf) <= 0 {
		t.Errorf("TLS server heap per connection is not positive: %v", tr)
	}
	checkFDs(t, fds, "the runs")
}

// checkFDs fails t unless this process holds about as many file
// descriptors as the before it had when what began. Closing is asynchronous in places
// (stdout pipes of exited children), so it waits a little and allows a
// few.
func checkFDs(t *testing.T, before int, what string) {
	t.Helper()
	const slack = 5
	var now int
	err := waitFor(context.Background(), 5*time.Second, func() bool { now = openFDs(t); return now <= before+slack })
	if err != nil {
		t.Errorf("%d file descriptors open after %s, %d before: the harness leaks", now, what, before)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(ents)
}
