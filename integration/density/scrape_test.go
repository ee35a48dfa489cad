package density

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// memStat is one reading of a process's memory from its Prometheus
// /metrics: the Go and process collectors that the broker and the TLS
// server both register.
type memStat struct {
	Heap       float64 // go_memstats_heap_inuse_bytes
	Alloc      float64 // go_memstats_heap_alloc_bytes: the objects in Heap
	RSS        float64 // process_resident_memory_bytes
	Stack      float64 // go_memstats_stack_inuse_bytes
	Goroutines float64 // go_goroutines
	GCs        float64 // go_gc_duration_seconds_count: completed GC cycles
}

var memMetrics = map[string]func(*memStat) *float64{
	"go_memstats_heap_inuse_bytes":  func(m *memStat) *float64 { return &m.Heap },
	"go_memstats_heap_alloc_bytes":  func(m *memStat) *float64 { return &m.Alloc },
	"process_resident_memory_bytes": func(m *memStat) *float64 { return &m.RSS },
	"go_memstats_stack_inuse_bytes": func(m *memStat) *float64 { return &m.Stack },
	"go_goroutines":                 func(m *memStat) *float64 { return &m.Goroutines },
	"go_gc_duration_seconds_count":  func(m *memStat) *float64 { return &m.GCs },
}

// settling bounds how hard settle works to see a GC cycle complete.
const (
	settleScrapes = 20000            // at most this many scrapes
	settleLimit   = 60 * time.Second // and for at most this long
	sweepPause    = 500 * time.Millisecond
	settleSamples = 5
)

// probe reads a process's /metrics over loopback HTTP.
type probe struct {
	base string // http://host:port
	hc   *http.Client
}

func newProbe(addr string) *probe {
	return &probe{base: "http://" + addr, hc: &http.Client{Timeout: 10 * time.Second}}
}

func (p *probe) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp, nil
}

// mem scrapes /metrics once.
func (p *probe) mem(ctx context.Context) (memStat, error) {
	resp, err := p.get(ctx, "/metrics")
	if err != nil {
		return memStat{}, err
	}
	defer resp.Body.Close()
	var m memStat
	seen := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		field := memMetrics[name]
		if !ok || field == nil {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return memStat{}, fmt.Errorf("metric %s: %w", name, err)
		}
		*field(&m) = f
		seen++
	}
	if err := sc.Err(); err != nil {
		return memStat{}, err
	}
	if seen != len(memMetrics) {
		return memStat{}, fmt.Errorf("/metrics lacks some of the Go and process collector metrics (found %d of %d)", seen, len(memMetrics))
	}
	return m, nil
}

// onlineMetric is the gauge of machines with an open presence stream to
// the broker; the TLS baseline server exports its own count of idle
// connections under the same name. /healthz no longer counts the fleet
// for callers who have not signed in.
const onlineMetric = "readymesh_machines_online"

// online returns the onlineMetric gauge from /metrics.
func (p *probe) online(ctx context.Context) (int, error) {
	resp, err := p.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || name != onlineMetric {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %w", name, err)
		}
		return int(f), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s/metrics lacks %s", p.base, onlineMetric)
}

// waitOnline polls the onlineMetric gauge until it reports want online,
// for at most limit.
func (p *probe) waitOnline(ctx context.Context, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	got := -1
	var lastErr error
	for time.Now().Before(deadline) {
		n, err := p.online(ctx)
		if err == nil && n == want {
			return nil
		}
		got, lastErr = n, err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s/metrics reports %s %d after %s, want %d (last error: %v)", p.base, onlineMetric, got, limit, want, lastErr)
}

// settled is a memory reading taken once the process's runtime settled.
type settled struct {
	memStat
	Scrapes int  // scrapes it took to see two GC cycles complete
	SawGC   bool // false: the bound ran out first, so Heap may hold garbage
}

// settle reads a process's memory the way an operator's dashboard would,
// but only after its garbage collector has run a whole cycle that began
// after the call did: until then go_memstats_heap_inuse_bytes counts whatever garbage
// the connection storm left, anywhere between nothing and the whole live
// heap (GOGC=100). Nothing is triggered in the process beyond GET
// /metrics; the scrapes' own small allocations are what eventually start
// the cycle, within settleScrapes and settleLimit. It then waits for the
// background sweeper and returns the minimum of a few samples.
func (p *probe) settle(ctx context.Context) (settled, error) {
	first, err := p.mem(ctx)
	if err != nil {
		return settled{}, err
	}
	var out settled
	deadline := time.Now().Add(settleLimit)
	for out.Scrapes < settleScrapes && time.Now().Before(deadline) {
		m, err := p.mem(ctx)
		if err != nil {
			return settled{}, err
		}
		out.Scrapes++
		// Two completions: the first may end a cycle that was already
		// running, and marking, when the call began.
		if m.GCs >= first.GCs+2 {
			out.SawGC = true
			break
		}
	}
	select {
	case <-ctx.Done():
		return settled{}, ctx.Err()
	case <-time.After(sweepPause):
	}
	out.memStat = memStat{Heap: math.Inf(1), Alloc: math.Inf(1), RSS: math.Inf(1), Stack: math.Inf(1)}
	for i := range settleSamples {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		m, err := p.mem(ctx)
		if err != nil {
			return settled{}, err
		}
		out.Heap, out.Alloc = min(out.Heap, m.Heap), min(out.Alloc, m.Alloc)
		out.RSS, out.Stack = min(out.RSS, m.RSS), min(out.Stack, m.Stack)
		out.Goroutines, out.GCs = m.Goroutines, m.GCs
	}
	return out, nil
}
