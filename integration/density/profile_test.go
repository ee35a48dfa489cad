package density

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// profileEnv, if set, names a directory where each bridge measurement
// saves the broker's heap and goroutine profiles, taken after each reading
// (heap-agents=N-before.pb.gz, heap-agents=N-after.pb.gz,
// goroutine-agents=N-after.txt). The broker then runs with --pprof, so a
// broker binary given in brokerEnv must know that flag. Attribute the
// per-agent heap with
//
//	go tool pprof -sample_index=inuse_space -top \
//	    -diff_base heap-agents=N-before.pb.gz heap-agents=N-after.pb.gz
//
// and divide by N. Unset (the default) takes no profiles.
const profileEnv = "READYMESH_DENSITY_PROFILES"

// profileRate is the broker's heap profiling rate while profiles are on:
// one sample per this many bytes allocated, against the runtime's default
// of 512 KiB, so that parts of a few hundred bytes per agent show up.
const profileRate = 4096

// pprofArgs returns the broker's --pprof flag on a free loopback port, the
// environment that sets its heap profiling rate, and the address; or
// nothing when profiles are off.
func pprofArgs() (args, env []string, addr string, err error) {
	if os.Getenv(profileEnv) == "" {
		return nil, nil, "", nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, "", err
	}
	addr = ln.Addr().String()
	ln.Close()
	debug := fmt.Sprintf("memprofilerate=%d", profileRate)
	if d := os.Getenv("GODEBUG"); d != "" {
		debug = d + "," + debug
	}
	env = []string{"GODEBUG=" + debug}
	return []string{"--pprof", addr}, env, addr, nil
}

// saveProfiles saves the broker's heap profile (and, after, its goroutine
// dump) for this reading, when profiles are on, and returns a quiet
// reading taken just before the profile.
//
// Settled readings come from a cycle that the scrapes themselves start,
// and what a scrape allocates while the collector marks is counted live in
// that cycle, the more the longer marking takes (the bigger the heap). The
// quiet reading is the broker's /debug/memstats?gc=1: a full collection
// with no scrape in flight, read before anything else allocates. The heap
// profile is then asked for with gc=1 too, so it shows the same heap.
func (b *brokerProc) saveProfiles(ctx context.Context, tb testing.TB, n int, when string) (memStat, error) {
	dir := os.Getenv(profileEnv)
	if dir == "" || b.pprof == nil {
		return memStat{}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return memStat{}, err
	}
	quiet, err := b.pprof.memStats(ctx)
	if err != nil {
		return memStat{}, err
	}
	heap := filepath.Join(dir, fmt.Sprintf("heap-agents=%d-%s.pb.gz", n, when))
	if err := b.pprof.save(ctx, "/debug/pprof/heap?gc=1", heap); err != nil {
		return memStat{}, fmt.Errorf("heap profile: %w", err)
	}
	tb.Logf("saved the broker's %s", heap)
	if when == "after" {
		g := filepath.Join(dir, fmt.Sprintf("goroutine-agents=%d-after.txt", n))
		if err := b.pprof.save(ctx, "/debug/pprof/goroutine?debug=1", g); err != nil {
			return memStat{}, fmt.Errorf("goroutine dump: %w", err)
		}
		tb.Logf("saved the broker's %s", g)
	}
	return quiet, nil
}

// memStats reads the broker's /debug/memstats?gc=1 (see saveProfiles).
func (p *probe) memStats(ctx context.Context) (memStat, error) {
	resp, err := p.get(ctx, "/debug/memstats?gc=1")
	if err != nil {
		return memStat{}, err
	}
	defer resp.Body.Close()
	var m struct {
		HeapInuse  float64 `json:"heap_inuse"`
		HeapAlloc  float64 `json:"heap_alloc"`
		StackInuse float64 `json:"stack_inuse"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return memStat{}, fmt.Errorf("/debug/memstats: %w", err)
	}
	return memStat{Heap: m.HeapInuse, Alloc: m.HeapAlloc, Stack: m.StackInuse}, nil
}

// save writes the body of GET path to file.
func (p *probe) save(ctx context.Context, path, file string) error {
	resp, err := p.get(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// saveParts writes the per-part breakdown of r's heap growth per agent,
// from the two profiles its measurement saved, to parts-agents=N.txt
// beside them (benchmark logs are cut at a few lines): what is held
// (inuse_space) and what connecting allocated in all (alloc_space, mostly
// garbage: the more garbage between long-lived objects, the more
// fragmented the heap).
func saveParts(tb testing.TB, r result, quiet [2]memStat) error {
	dir := os.Getenv(profileEnv)
	if dir == "" {
		return nil
	}
	var prof [2]*heapProfile
	for i, when := range []string{"before", "after"} {
		p, err := readHeapProfile(filepath.Join(dir, fmt.Sprintf("heap-agents=%d-%s.pb.gz", r.n, when)))
		if err != nil {
			return err
		}
		prof[i] = p
	}
	held, err := heapParts(prof[0], prof[1], "inuse_space", r.n)
	if err != nil {
		return err
	}
	allocated, err := heapParts(prof[0], prof[1], "alloc_space", r.n)
	if err != nil {
		return err
	}
	q := result{n: r.n}
	q.before.memStat, q.after.memStat = quiet[0], quiet[1]
	// The runtime's own share: spans kept in use by a few live objects
	// among freed ones, which no heap profile shows.
	frag := q.per(heapOf) - q.per(allocOf)
	line := "  %-66s %7.0f B\n"
	text := fmt.Sprintf("broker heap per agent by part\nsettled: %s\nquiet (after a full GC, no scrape in flight): %.0f heap B (%.0f in objects)\n\n"+
		"held (inuse_space, quiet):\n%s"+line+line+line+"\nallocated while connecting (alloc_space):\n%s",
		r, q.per(heapOf), q.per(allocOf), held.table(),
		"runtime: span fragmentation (heap in use − allocated, quiet)", frag,
		"heap in use, quiet", q.per(heapOf),
		"heap in use, settled (the benchmark's heap-B/agent)", r.per(heapOf),
		allocated.table())
	path := filepath.Join(dir, fmt.Sprintf("parts-agents=%d.txt", r.n))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	tb.Logf("saved the per-part breakdown: %s", path)
	return nil
}
