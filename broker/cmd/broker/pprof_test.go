package main

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestListenPprofLoopbackOnly checks that the profiler listens on loopback
// addresses only: every peer's state is in its profiles.
func TestListenPprofLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:6060", "localhost:0", "127.0.0.1"} {
		ln, err := listenPprof(addr)
		if err == nil {
			ln.Close()
			t.Errorf("listenPprof(%q) listened on %s, want %v", addr, ln.Addr(), errPprofAddr)
			continue
		}
		if !errors.Is(err, errPprofAddr) {
			t.Errorf("listenPprof(%q) = %v, want %v", addr, err, errPprofAddr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := listenPprof(addr)
		if err != nil {
			if strings.Contains(addr, "::1") {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Fatalf("listenPprof(%q): %v", addr, err)
		}
		ln.Close()
	}
}

// TestPprofMuxServesHeap checks that the profiler's mux serves a heap
// profile and the index, and nothing outside /debug/pprof/.
func TestPprofMuxServesHeap(t *testing.T) {
	srv := httptest.NewServer(pprofMux())
	defer srv.Close()
	for path, want := range map[string]int{
		"/debug/pprof/":     http.StatusOK,
		"/debug/pprof/heap": http.StatusOK,
		"/debug/memstats":   http.StatusOK,
		"/metrics":          http.StatusNotFound,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
}

// TestMemStatsAfterGC checks that /debug/memstats?gc=1 collects first and
// reports a heap in use at least as large as the objects in it.
func TestMemStatsAfterGC(t *testing.T) {
	srv := httptest.NewServer(pprofMux())
	defer srv.Close()
	read := func(query string) map[string]uint64 {
		resp, err := http.Get(srv.URL + "/debug/memstats" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]uint64
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := read("")
	after := read("?gc=1")
	if after["num_gc"] <= before["num_gc"] {
		t.Errorf("num_gc %d after ?gc=1, %d before: no collection ran", after["num_gc"], before["num_gc"])
	}
	if after["heap_alloc"] == 0 || after["heap_inuse"] < after["heap_alloc"] {
		t.Errorf("heap_inuse %d, heap_alloc %d: want 0 < alloc <= inuse", after["heap_inuse"], after["heap_alloc"])
	}
}

// TestPprofIsARunFlag: --pprof is a flag of broker run (it was lost once
// when the commands got flag sets of their own), and still refuses an
// address beyond loopback.
func TestPprofIsARunFlag(t *testing.T) {
	fs := flag.NewFlagSet("broker run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	defineRunFlags(fs)
	definePprof(fs)
	err := fs.Parse([]string{"--pprof", "192.0.2.1:6060"})
	if err == nil || !strings.Contains(err.Error(), errPprofAddr.Error()) {
		t.Fatalf("run --pprof 192.0.2.1:6060: %v, want the loopback refusal", err)
	}
}
