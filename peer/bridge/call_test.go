package bridge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

const testProto protocol.ID = "/readymesh/test/1.0.0"

// transports are the listen addresses of each bridge transport on
// loopback.
var transports = map[string]string{
	"quic": "/ip4/127.0.0.1/udp/0/quic-v1",
	"tcp":  "/ip4/127.0.0.1/tcp/0",
	"ws":   "/ip4/127.0.0.1/tcp/0/ws",
}

func newTestHost(t *testing.T, listen ...string) host.Host {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "host.key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(HostConfig{Key: key, Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// pair returns a server listening on listen, and a client connected to it.
func pair(t *testing.T, listen string) (server, client host.Host) {
	t.Helper()
	server = newTestHost(t, listen)
	client = newTestHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return server, client
}

// answer is a handler like the broker's: read one request, write one reply,
// close. It reports what it read after the request on got.
func answer(got chan<- error) network.StreamHandler {
	return func(s network.Stream) {
		defer s.Close()
		r := wire.NewReader(s)
		var hello wire.Hello
		if err := r.Read(wire.MaxControl, &hello); err != nil {
			wire.Write(s, &wire.HelloReply{Error: &wire.Error{Code: wire.CodeBadRequest, Message: err.Error()}})
			return
		}
		wire.Write(s, &wire.HelloReply{HeartbeatMS: 5000, Brokers: []wire.BrokerInfo{{PeerID: hello.MachineID}}})
		if got != nil {
			_, err := r.ReadRaw(wire.MaxControl)
			got <- err
		}
	}
}

func call(t *testing.T, h host.Host, p peer.ID, req, reply any, max int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Call(ctx, h, p, testProto, req, reply, max)
}

func TestCall(t *testing.T) {
	for name, listen := range transports {
		t.Run(name, func(t *testing.T) {
			server, client := pair(t, listen)
			after := make(chan error, 1)
			server.SetStreamHandler(testProto, answer(after))
			var reply wire.HelloReply
			if err := call(t, client, server.ID(), &wire.Hello{MachineID: "m1"}, &reply, wire.MaxControl); err != nil {
				t.Fatal(err)
			}
			if reply.HeartbeatMS != 5000 || len(reply.Brokers) != 1 || reply.Brokers[0].PeerID != "m1" {
				t.Errorf("reply %+v", reply)
			}
			// Call half-closes after the request: the server sees a clean end.
			if err := <-after; err != io.EOF {
				t.Errorf("server read after the request: %v, want io.EOF", err)
			}
		})
	}
}

func TestCallErrors(t *testing.T) {
	server, client := pair(t, transports["quic"])
	server.SetStreamHandler(testProto, func(s network.Stream) {
		defer s.Close()
		wire.NewReader(s).ReadRaw(wire.MaxControl)
		wire.Write(s, &wire.Login{Token: strings.Repeat("x", 1000)})
	})
	var reply wire.Login
	if err := call(t, client, server.ID(), &wire.Hello{MachineID: "m"}, &reply, 100); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized reply: got %v, want ErrTooLarge", err)
	}
	if err := call(t, client, server.ID(), &wire.Hello{MachineID: "m"}, &wire.Hello{}, wire.MaxControl); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("reply failing validation: got %v, want ErrMalformed", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Call(ctx, client, server.ID(), "/readymesh/nope/1.0.0", &wire.Hello{MachineID: "m"}, &reply, 100); err == nil {
		t.Error("call on an unserved protocol succeeded")
	}
	if err := call(t, client, server.ID(), func() {}, &reply, 100); err == nil {
		t.Error("call with an unencodable request succeeded")
	}
}

// TestCallDeadline: a server that never answers costs the caller no more
// than its context.
func TestCallDeadline(t *testing.T) {
	server, client := pair(t, transports["quic"])
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	server.SetStreamHandler(testProto, func(s network.Stream) {
		defer s.Reset()
		<-release
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	var reply wire.HelloReply
	err := Call(ctx, client, server.ID(), testProto, &wire.Hello{MachineID: "m"}, &reply, wire.MaxControl)
	if err == nil {
		t.Fatal("call to a silent server succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("call took %v with a 300ms context", took)
	}
}

// slowHalfClose wraps a host so that its streams half-close late, as a
// busy client may: the server has answered and closed its side by then.
type slowHalfClose struct {
	host.Host
	delay time.Duration
}

func (h slowHalfClose) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return slowStream{Stream: s, delay: h.delay}, nil
}

type slowStream struct {
	network.Stream
	delay time.Duration
}

func (s slowStream) CloseWrite() error {
	time.Sleep(s.delay)
	return s.Stream.CloseWrite()
}

// TestCallReplyBeforeCloseWrite: the broker answers as soon as it has read
// the request and closes the stream, possibly before the caller has
// half-closed it. Over QUIC that close tells the caller to stop sending, so
// its CloseWrite fails; the reply is already there and Call must return it.
func TestCallReplyBeforeCloseWrite(t *testing.T) {
	for name, listen := range transports {
		t.Run(name, func(t *testing.T) {
			server, client := pair(t, listen)
			server.SetStreamHandler(testProto, answer(nil))
			var reply wire.HelloReply
			err := call(t, slowHalfClose{Host: client, delay: 200 * time.Millisecond}, server.ID(),
				&wire.Hello{MachineID: "m1"}, &reply, wire.MaxControl)
			if err != nil {
				t.Fatalf("the server answered, but Call failed: %v", err)
			}
			if reply.HeartbeatMS != 5000 {
				t.Errorf("reply %+v", reply)
			}
		})
	}
}

// TestCallRefusedUnread: a server refuses an oversized request after its
// length prefix, without reading the body, and closes. The caller must get
// that refusal, not a write error.
func TestCallRefusedUnread(t *testing.T) {
	for name, listen := range transports {
		t.Run(name, func(t *testing.T) {
			server, client := pair(t, listen)
			server.SetStreamHandler(testProto, func(s network.Stream) {
				defer s.Close()
				_, err := wire.NewReader(s).ReadRaw(1024)
				wire.Write(s, &wire.CheckInAck{Error: &wire.Error{Code: wire.CodeTooLarge, Message: err.Error()}})
				s.CloseWrite()
			})
			req := &wire.Login{Token: string(bytes.Repeat([]byte("x"), 4<<20))}
			var ack wire.CheckInAck
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := Call(ctx, client, server.ID(), testProto, req, &ack, wire.MaxControl)
			if err != nil {
				t.Fatalf("the server refused with too_large, but Call returned %v", err)
			}
			if ack.Error == nil || ack.Error.Code != wire.CodeTooLarge {
				t.Errorf("reply %+v, want code too_large", ack)
			}
		})
	}
}

func TestNewHostRefuses(t *testing.T) {
	if _, err := NewHost(HostConfig{}); err == nil {
		t.Error("NewHost without a key succeeded")
	}
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	if h, err := NewHost(HostConfig{Key: key, Listen: []string{"localhost:1"}}); err == nil {
		h.Close()
		t.Error("NewHost with a bad listen address succeeded")
	}
}

// TestNewHostLimits: a broker-sized host (MaxConns set) starts, listens on
// every transport, and serves.
func TestNewHostLimits(t *testing.T) {
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(HostConfig{Key: key, Listen: []string{"127.0.0.1:0"}, MaxConns: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var kinds []string
	for _, a := range h.Addrs() {
		kinds = append(kinds, a.String())
	}
	joined := strings.Join(kinds, " ")
	for _, want := range []string{"/quic-v1", "/tcp/", "/ws"} {
		if !strings.Contains(joined, want) {
			t.Errorf("listening on %s, no %s", joined, want)
		}
	}
	h.SetStreamHandler(testProto, answer(nil))
	client := newTestHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	var reply wire.HelloReply
	if err := call(t, client, h.ID(), &wire.Hello{MachineID: "m1"}, &reply, wire.MaxControl); err != nil {
		t.Fatal(err)
	}
}
