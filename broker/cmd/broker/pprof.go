package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"time"
)

// The --pprof flag serves Go's profiler on a loopback address, so that an
// operator or a benchmark (integration/density) can see what a broker's
// memory and goroutines are spent on while it holds real bridges, and
// /debug/memstats, the heap's size right after a full collection. It is off
// unless given, and refuses any address that is not loopback: profiles
// show every peer's state and must not leave the machine.
//
// It is a flag of broker run only (not a config file key: it acts when
// given), parsed, and its listener opened, before the broker starts; the
// server then lives as long as the process.
func definePprof(fs *flag.FlagSet) {
	fs.Func("pprof", "serve Go's profiler (net/http/pprof) on this loopback `addr`ess, e.g. 127.0.0.1:6060 (default: off)", servePprof)
}

// errPprofAddr is returned for a --pprof address that is not loopback.
var errPprofAddr = errors.New("must be a loopback IP address and port, e.g. 127.0.0.1:6060")

// pprofStarted guards against a second --pprof, which would open a second
// listener.
var pprofStarted bool

// servePprof listens on addr and serves the profiler there for the life
// of the process.
func servePprof(addr string) error {
	if pprofStarted {
		return errors.New("given twice")
	}
	ln, err := listenPprof(addr)
	if err != nil {
		return err
	}
	pprofStarted = true
	srv := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Fprintf(os.Stderr, "broker: profiler on http://%s/debug/pprof/\n", ln.Addr())
	return nil
}

// listenPprof listens on addr if it is a loopback IP address and port.
func listenPprof(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", addr, errPprofAddr)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%q: %w", addr, errPprofAddr)
	}
	return net.Listen("tcp", addr)
}

// pprofMux routes /debug/pprof/ to the profiler's handlers on a mux of its
// own (the package's import also registers them on http.DefaultServeMux,
// which the broker never serves), and /debug/memstats to memStats.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/memstats", memStats)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// memStats serves the heap and stack figures of runtime.MemStats as JSON;
// with gc=1 it first runs a full garbage collection, so the figures are
// the live heap with nothing but this request's own allocations on top.
// (/metrics reports the same figures, but a scrape allocates much more
// than this, and a heap profile's writer more still.)
func memStats(w http.ResponseWriter, r *http.Request) {
	if r.FormValue("gc") == "1" {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]uint64{"heap_inuse": m.HeapInuse, "heap_alloc": m.HeapAlloc,
		"stack_inuse": m.StackInuse, "num_gc": uint64(m.NumGC)})
}
