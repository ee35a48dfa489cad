package cluster

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// lab builds clusters for a test, on an in-memory network (inside a
// synctest bubble) or on real loopback sockets, every node behind a
// faultTransport sharing one faults.
type lab struct {
	t       testing.TB
	mem     *memNet // nil: loopback NetTransports
	faults  *faults
	profile Profile
	logs    *logSink
}

// newMemLab returns a lab on an in-memory network. Call it inside
// synctest.Test so memberlist runs on the bubble's clock.
func newMemLab(t testing.TB, p Profile) *lab {
	// Registered first, this cleanup runs after every node's Close. The
	// bubble's clock stops when the test function returns, so memberlist
	// goroutines still finishing a probe or a stream (bounded by its
	// timeouts) must get the time to do so first.
	t.Cleanup(func() { time.Sleep(time.Minute) })
	return &lab{t: t, mem: newMemNet(), faults: newFaults(), profile: p, logs: newLogSink(t)}
}

// newLoopbackLab returns a lab on 127.0.0.1 with kernel-picked ports.
func newLoopbackLab(t testing.TB, p Profile) *lab {
	return &lab{t: t, faults: newFaults(), profile: p, logs: newLogSink(t)}
}

// transport makes a node's transport.
func (l *lab) transport() *faultTransport {
	if l.mem != nil {
		return newFaultTransport(l.mem.transport(), l.faults)
	}
	nt, err := listen("127.0.0.1", 0, log.New(io.Discard, "", 0))
	if err != nil {
		l.t.Fatal(err)
	}
	return newFaultTransport(nt, l.faults)
}

// node starts a broker named name that joins the given addresses; opts
// adjust its Config first. Close runs at cleanup.
func (l *lab) node(name string, join []string, opts ...func(*Config)) *Cluster {
	l.t.Helper()
	cfg := Config{
		Name:      name,
		Region:    "eu",
		Join:      join,
		Profile:   l.profile,
		Meta:      Meta{PeerID: "peer-" + name, HTTP: "127.0.0.1:8080", Bridge: []string{"/ip4/127.0.0.1/udp/7400/quic-v1"}},
		Transport: l.transport(),
		Logger:    slog.New(l.logs.handler(name)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	if err := c.Start(context.Background()); err != nil {
		l.t.Fatal(err)
	}
	return c
}

// cluster starts n brokers b0…b(n-1), each joining b0, and waits until
// every one sees all n alive.
func (l *lab) cluster(n int, opts ...func(*Config)) []*Cluster {
	l.t.Helper()
	cs := []*Cluster{l.node("b0", nil, opts...)}
	for i := 1; i < n; i++ {
		cs = append(cs, l.node(fmt.Sprintf("b%d", i), []string{cs[0].LocalAddr()}, opts...))
	}
	waitFor(l.t, 30*time.Second, "all members alive", func() bool { return allAlive(cs, n) })
	return cs
}

// kill stops c without leaving, as a crash would.
func kill(c *Cluster) {
	c.leave.Store(false)
	c.Close()
}

func allAlive(cs []*Cluster, n int) bool {
	for _, c := range cs {
		if countState(c, StateAlive) != n {
			return false
		}
	}
	return true
}

func countState(c *Cluster, state string) (n int) {
	for _, m := range c.Members() {
		if m.State == state {
			n++
		}
	}
	return n
}

func stateOf(c *Cluster, name string) string {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func addrs(cs ...*Cluster) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.LocalAddr())
	}
	return out
}

// waitFor polls cond every 10 ms until it holds, failing the test after
// timeout. Inside a synctest bubble the wait costs no real time.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// logSink collects the logs of a test's nodes and writes them through
// t.Log (info and above; debug too with CLUSTER_TEST_DEBUG=1). It stops
// writing to t once the test's cleanups run, as memberlist goroutines on
// real sockets may log a moment after Close.
type logSink struct {
	t     testing.TB
	debug bool
	quiet bool // collect, but do not write through t.Log

	mu    sync.Mutex // guards all following fields
	done  bool       // the test's cleanups have begun
	lines []string   // info and above
}

func newLogSink(t testing.TB) *logSink {
	s := &logSink{t: t, debug: os.Getenv("CLUSTER_TEST_DEBUG") == "1"}
	t.Cleanup(func() {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
	})
	return s
}

func (s *logSink) handler(node string) slog.Handler { return &testHandler{sink: s, prefix: node} }

// grep returns the collected lines containing sub.
func (s *logSink) grep(sub string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

type testHandler struct {
	sink   *logSink
	prefix string
	attrs  []slog.Attr
}

func (h *testHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.sink.debug
}

func (h *testHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", h.prefix, r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	line := b.String()
	s := h.sink
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	if r.Level >= slog.LevelInfo {
		s.lines = append(s.lines, line)
	}
	if !s.quiet {
		s.t.Log(line)
	}
	return nil
}

func (h *testHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &testHandler{sink: h.sink, prefix: h.prefix, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *testHandler) WithGroup(string) slog.Handler { return h }

// profileConfig returns memberlist's configuration for p, for bounds.
func profileConfig(p Profile) *memberlist.Config {
	t, err := p.timing()
	if err != nil {
		panic(err)
	}
	return t.base()
}
