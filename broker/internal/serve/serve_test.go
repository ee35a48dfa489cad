package serve_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// exchangeTimeout bounds every exchange a test makes.
const exchangeTimeout = 10 * time.Second

// rig is a server host and a client host connected on loopback QUIC,
// and a Server whose refusals are counted in reg.
type rig struct {
	server, client host.Host
	srv            *serve.Server
	reg            *prometheus.Registry
	protos         atomic.Int64
}

func newHost(t *testing.T, listen ...string) host.Host {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "host.key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key, Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{server: newHost(t, "/ip4/127.0.0.1/udp/0/quic-v1"), client: newHost(t), reg: prometheus.NewRegistry()}
	r.srv = serve.New(nil, r.reg)
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	if err := r.client.Connect(ctx, peer.AddrInfo{ID: r.server.ID(), Addrs: r.server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return r
}

// handle registers h on a protocol of its own and returns it.
func (r *rig) handle(t *testing.T, h func(s *serve.Stream, req *wire.Hello) (any, error), spec serve.Spec) protocol.ID {
	proto := protocol.ID(fmt.Sprintf("/readymesh/serve-test/%d", r.protos.Add(1)))
	r.server.SetStreamHandler(proto, serve.Handle(r.srv, spec, h))
	t.Cleanup(func() { r.server.RemoveStreamHandler(proto) })
	return proto
}

// send writes raw on a new stream of proto, half-closes it and reads one
// reply into reply. The request is written while the reply is read, as
// bridge.Call does: a refusal may come before the request is read.
func (r *rig) send(proto protocol.ID, raw []byte, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	s, err := r.client.NewStream(ctx, r.server.ID(), proto)
	if err != nil {
		return err
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(exchangeTimeout))
	written := make(chan struct{})
	go func() {
		defer close(written)
		if _, err := s.Write(raw); err == nil {
			s.CloseWrite()
		}
	}()
	defer func() { <-written }()
	return wire.NewReader(s).Read(wire.MaxControl, reply)
}

// frame is body behind its length prefix.
func frame(body string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := wire.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// refusals reads readymesh_refused_total from reg: request/code → count.
func refusals(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "readymesh_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[labels["request"]+"/"+labels["code"]] += m.GetCounter().GetValue()
		}
	}
	return out
}

// results collects what a Spec's Result is told.
type results struct {
	mu  sync.Mutex
	got []string // mu guards
}

func (r *results) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
}

// wait returns what Result was told once it was told n things, or fails.
func (r *results) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(exchangeTimeout)
	for {
		r.mu.Lock()
		got := append([]string(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("Result told %v, want %d results", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ackSpec answers in CheckInAck, the reply type with more than an error.
func ackSpec(name string, res *results) serve.Spec {
	return serve.Spec{Name: name, Deadline: exchangeTimeout, MaxRequest: 256,
		Reply: func() wire.Refusable { return &wire.CheckInAck{} }, Result: res.add}
}

// TestHandle sends one request per case and checks the reply, what
// Result was told and the refusal counter.
func TestHandle(t *testing.T) {
	r := newRig(t)
	hello := func(t *testing.T) []byte { return encode(t, &wire.Hello{MachineID: "m1"}) }
	tests := []struct {
		name    string
		req     func(t *testing.T) []byte
		handler func(s *serve.Stream, req *wire.Hello) (any, error)
		called  bool   // the handler must run
		code    string // the refusal's code; "" for an answer
		message string // in the refusal's message
		seq     uint64 // the reply's Seq
		result  string
	}{
		{name: "answer", req: hello, called: true, seq: 9, result: "ok",
			handler: func(s *serve.Stream, req *wire.Hello) (any, error) {
				if req.MachineID != "m1" {
					return nil, wire.Errorf(wire.CodeBadRequest, "got %q", req.MachineID)
				}
				return &wire.CheckInAck{Seq: 9}, nil
			}},
		{name: "not json", req: func(*testing.T) []byte { return frame("{not json") }, code: wire.CodeBadRequest,
			message: "malformed", result: wire.CodeBadRequest},
		{name: "fails validation", req: func(t *testing.T) []byte { return encode(t, &wire.Hello{}) },
			code: wire.CodeBadRequest, message: "machine_id is empty", result: wire.CodeBadRequest},
		{name: "cut short", req: func(*testing.T) []byte { return frame(`{"machine_id":"m1"}`)[:5] },
			code: wire.CodeBadRequest, message: "stream ended", result: wire.CodeBadRequest},
		{name: "empty stream", req: func(*testing.T) []byte { return nil }, code: wire.CodeBadRequest, result: wire.CodeBadRequest},
		{name: "oversized", req: func(*testing.T) []byte { return frame(strings.Repeat("x", 1000)) },
			code: wire.CodeTooLarge, message: "1000 bytes, limit 256", result: wire.CodeTooLarge},
		{name: "oversized prefix alone", req: func(*testing.T) []byte { return binary.AppendUvarint(nil, 1<<30) },
			code: wire.CodeTooLarge, message: "limit 256", result: wire.CodeTooLarge},
		{name: "wire error", req: hello, called: true, code: wire.CodeNotFound, message: "no machine m1", result: wire.CodeNotFound,
			handler: func(s *serve.Stream, req *wire.Hello) (any, error) {
				return nil, wire.Errorf(wire.CodeNotFound, "no machine %s", req.MachineID)
			}},
		{name: "wrapped wire error", req: hello, called: true, code: wire.CodeConflict, message: "taken", result: wire.CodeConflict,
			handler: func(*serve.Stream, *wire.Hello) (any, error) {
				return nil, fmt.Errorf("enrol: %w", wire.Errorf(wire.CodeConflict, "taken"))
			}},
		{name: "other error is internal", req: hello, called: true, code: wire.CodeInternal, message: "disk full", result: wire.CodeInternal,
			handler: func(*serve.Stream, *wire.Hello) (any, error) { return nil, errors.New("disk full") }},
		{name: "refusal in the handler's reply", req: hello, called: true, code: wire.CodeConflict, message: "sequence",
			seq: 41, result: wire.CodeConflict,
			handler: func(*serve.Stream, *wire.Hello) (any, error) {
				return &wire.CheckInAck{Seq: 41}, wire.Errorf(wire.CodeConflict, "sequence out of order")
			}},
		{name: "refusal with a reply that cannot carry it", req: hello, called: true, code: wire.CodeForbidden, result: wire.CodeForbidden,
			handler: func(*serve.Stream, *wire.Hello) (any, error) {
				return map[string]int{"seq": 5}, wire.Errorf(wire.CodeForbidden, "no")
			}},
		{name: "nil wire error is success", req: hello, called: true, seq: 3, result: "ok",
			handler: func(*serve.Stream, *wire.Hello) (any, error) {
				var werr *wire.Error
				return &wire.CheckInAck{Seq: 3}, werr
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var res results
			var called atomic.Bool
			h := func(s *serve.Stream, req *wire.Hello) (any, error) {
				called.Store(true)
				if s.Remote != r.client.ID() {
					return nil, wire.Errorf(wire.CodeInternal, "remote %s, want %s", s.Remote, r.client.ID())
				}
				return tc.handler(s, req)
			}
			name := "t-" + strings.ReplaceAll(tc.name, " ", "-")
			proto := r.handle(t, h, ackSpec(name, &res))
			var ack wire.CheckInAck
			if err := r.send(proto, tc.req(t), &ack); err != nil {
				t.Fatalf("reply: %v", err)
			}
			got := res.wait(t, 1)
			switch {
			case tc.code == "" && ack.Error != nil:
				t.Errorf("refused: %v", ack.Error)
			case tc.code != "" && (ack.Error == nil || ack.Error.Code != tc.code || !strings.Contains(ack.Error.Message, tc.message)):
				t.Errorf("reply error %v, want %s containing %q", ack.Error, tc.code, tc.message)
			}
			if ack.Seq != tc.seq {
				t.Errorf("reply seq %d, want %d", ack.Seq, tc.seq)
			}
			if called.Load() != tc.called {
				t.Errorf("handler called: %v, want %v", called.Load(), tc.called)
			}
			if len(got) != 1 || got[0] != tc.result {
				t.Errorf("Result told %v, want [%s]", got, tc.result)
			}
			want := map[string]float64{}
			if tc.code != "" {
				want[name+"/"+tc.code] = 1
			}
			for k, v := range refusals(t, r.reg) {
				if strings.HasPrefix(k, name+"/") && want[k] != v {
					t.Errorf("refused_total{%s} = %v, want %v", k, v, want[k])
				}
			}
			if tc.code != "" && refusals(t, r.reg)[name+"/"+tc.code] != 1 {
				t.Errorf("refused_total{%s/%s} not counted: %v", name, tc.code, refusals(t, r.reg))
			}
		})
	}
}

// TestHandleWroteItself: a handler that answers on the stream itself and
// returns (nil, nil), even as a typed nil, has nothing more written; what
// follows the request is read through Stream.Reader.
func TestHandleWroteItself(t *testing.T) {
	r := newRig(t)
	var res results
	proto := r.handle(t, func(s *serve.Stream, req *wire.Hello) (any, error) {
		var next wire.Hello
		if err := s.Reader.Read(wire.MaxControl, &next); err != nil {
			return nil, err
		}
		wire.Write(s, &wire.CheckInAck{Seq: uint64(len(req.MachineID + next.MachineID))})
		var none *wire.CheckInAck
		return none, nil
	}, ackSpec("wrote-itself", &res))
	raw := append(encode(t, &wire.Hello{MachineID: "m1"}), encode(t, &wire.Hello{MachineID: "second"})...)
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	s, err := r.client.NewStream(ctx, r.server.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(exchangeTimeout))
	if _, err := s.Write(raw); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	rd := wire.NewReader(s)
	var ack wire.CheckInAck
	if err := rd.Read(wire.MaxControl, &ack); err != nil || ack.Seq != 8 || ack.Error != nil {
		t.Fatalf("reply %+v, %v; want seq 8", ack, err)
	}
	if _, err := rd.ReadRaw(wire.MaxControl); err != io.EOF {
		t.Errorf("after the handler's reply: %v, want io.EOF", err)
	}
	if got := res.wait(t, 1); got[0] != "ok" {
		t.Errorf("Result told %v", got)
	}
}

// TestHandleAdmit: Admit decides from the peer before the request is
// read, so an oversized request from a refused peer gets Admit's code,
// not too_large, and the handler never runs.
func TestHandleAdmit(t *testing.T) {
	r := newRig(t)
	var admitted atomic.Value // the peer Admit was asked about
	tests := []struct {
		name  string
		allow bool
		req   []byte
		code  string
	}{
		{"refused, oversized request", false, frame(strings.Repeat("x", 1000)), wire.CodeForbidden},
		{"refused, good request", false, encode(t, &wire.Hello{MachineID: "m1"}), wire.CodeForbidden},
		{"admitted, oversized request", true, frame(strings.Repeat("x", 1000)), wire.CodeTooLarge},
		{"admitted, good request", true, encode(t, &wire.Hello{MachineID: "m1"}), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var res results
			var called atomic.Bool
			spec := ackSpec("admit", &res)
			spec.Admit = func(remote peer.ID) error {
				admitted.Store(remote)
				if !tc.allow {
					return wire.Errorf(wire.CodeForbidden, "members only")
				}
				return nil
			}
			proto := r.handle(t, func(*serve.Stream, *wire.Hello) (any, error) {
				called.Store(true)
				return &wire.CheckInAck{Seq: 1}, nil
			}, spec)
			var ack wire.CheckInAck
			if err := r.send(proto, tc.req, &ack); err != nil {
				t.Fatal(err)
			}
			if tc.code == "" && (ack.Error != nil || ack.Seq != 1) || tc.code != "" && (ack.Error == nil || ack.Error.Code != tc.code) {
				t.Errorf("reply %+v, want code %q", ack, tc.code)
			}
			if called.Load() != (tc.code == "") {
				t.Errorf("handler called: %v", called.Load())
			}
			if got := res.wait(t, 1); tc.code != "" && got[0] != tc.code {
				t.Errorf("Result told %v, want %s", got, tc.code)
			}
			if p, _ := admitted.Load().(peer.ID); p != r.client.ID() {
				t.Errorf("Admit asked about %s, want the client %s", p, r.client.ID())
			}
		})
	}
	got := refusals(t, r.reg)
	if got["admit/"+wire.CodeForbidden] != 2 || got["admit/"+wire.CodeTooLarge] != 1 {
		t.Errorf("refusals %v", got)
	}
}

// TestHandleOp: a handler that names its operation refines the request
// label, in the counter and in Result's protocol.
func TestHandleOp(t *testing.T) {
	r := newRig(t)
	var res results
	proto := r.handle(t, func(s *serve.Stream, req *wire.Hello) (any, error) {
		s.Op = req.MachineID
		if req.MachineID == "allowed" {
			return &wire.Reply{}, nil
		}
		return nil, wire.Errorf(wire.CodeForbidden, "%s is not yours", req.MachineID)
	}, serve.Spec{Name: "tech", Deadline: exchangeTimeout, MaxRequest: wire.MaxControl,
		Reply: func() wire.Refusable { return &wire.Reply{} }, Result: res.add})
	for _, op := range []string{"queue.add", "queue.add", "audit", "allowed"} {
		var reply wire.Reply
		if err := r.send(proto, encode(t, &wire.Hello{MachineID: op}), &reply); err != nil {
			t.Fatal(err)
		}
	}
	res.wait(t, 4)
	got := refusals(t, r.reg)
	want := map[string]float64{"tech:queue.add/forbidden": 2, "tech:audit/forbidden": 1}
	if len(got) != len(want) {
		t.Errorf("refusals %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("refused_total{%s} = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// TestHandleDeadline: a peer that opens a stream and sends nothing is
// refused when the spec's deadline passes, and still gets the refusal.
func TestHandleDeadline(t *testing.T) {
	r := newRig(t)
	var res results
	spec := ackSpec("silent", &res)
	spec.Deadline = 100 * time.Millisecond
	proto := r.handle(t, func(*serve.Stream, *wire.Hello) (any, error) { return &wire.CheckInAck{}, nil }, spec)
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	s, err := r.client.NewStream(ctx, r.server.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(exchangeTimeout))
	// Opening a stream sends nothing until the first write: send a
	// partial length prefix so the server's handler starts.
	if _, err := s.Write([]byte{0x80}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var ack wire.CheckInAck
	if err := wire.NewReader(s).Read(wire.MaxControl, &ack); err != nil {
		t.Fatal(err)
	}
	if ack.Error == nil || ack.Error.Code != wire.CodeBadRequest {
		t.Errorf("reply %+v, want bad_request", ack)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused after %v", d)
	}
	if got := res.wait(t, 1); got[0] != wire.CodeBadRequest {
		t.Errorf("Result told %v", got)
	}
}

// TestRefused counts a refusal made outside a stream, and a Server
// without a registry counts without exporting.
func TestRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := serve.New(nil, reg)
	srv.Refused("console:login", wire.CodeUnauthorized)
	srv.Refused("console:login", wire.CodeUnauthorized)
	if got := refusals(t, reg); got["console:login/unauthorized"] != 2 || len(got) != 1 {
		t.Errorf("refusals %v", got)
	}
	serve.New(nil, nil).Refused("x", "y")
}

func TestCodes(t *testing.T) {
	if e := serve.Code(errors.New("boom")); e.Code != wire.CodeInternal || e.Message != "boom" {
		t.Errorf("Code(plain) = %+v", e)
	}
	werr := wire.Errorf(wire.CodeGone, "gone")
	if e := serve.Code(fmt.Errorf("wrapped: %w", werr)); e != werr {
		t.Errorf("Code(wrapped) = %+v, want the *wire.Error itself", e)
	}
	if c := serve.ReadCode(fmt.Errorf("x: %w", wire.ErrTooLarge)); c != wire.CodeTooLarge {
		t.Errorf("ReadCode(too large) = %s", c)
	}
	if c := serve.ReadCode(io.ErrUnexpectedEOF); c != wire.CodeBadRequest {
		t.Errorf("ReadCode(other) = %s", c)
	}
}
