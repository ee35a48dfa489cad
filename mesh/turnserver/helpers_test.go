package turnserver

import (
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/turn/v5"

	"github.com/readymesh/readymesh/mesh/internal/pionlog"
)

// testLogger logs through t; TURNSERVER_DEBUG=1 shows debug logs.
func testLogger(t testing.TB, name string) *slog.Logger {
	return pionlog.TestLogger(t, name, "TURNSERVER_DEBUG")
}

// checkLeaks fails t if goroutines are still running after the test.
// pion's TURN client (the test's, not the server under test) leaves a
// channel-bind transaction waiting out its retransmission timer after
// Close; that one is not the server's.
func checkLeaks(t *testing.T) {
	pionlog.CheckLeaks(t, "turn/v5/internal/client.(*Transaction).WaitForResult")
}

func testSecret(t testing.TB) []byte {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	return secret
}

// newLoopbackServer starts a server on 127.0.0.1 with a kernel-chosen port.
func newLoopbackServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.ListenAddr = "127.0.0.1:0"
	if cfg.Secret == nil {
		cfg.Secret = testSecret(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t, "turn")
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// client is a pion TURN client on its own socket.
type client struct {
	*turn.Client
	conn net.PacketConn
}

// newClient opens a socket on network n (nil: loopback on the host) and a
// TURN client towards server. Cleanup closes both.
func newClient(t *testing.T, n transport.Net, server net.Addr, username, password string) *client {
	t.Helper()
	var (
		conn net.PacketConn
		err  error
	)
	if n == nil {
		conn, err = net.ListenPacket("udp4", "127.0.0.1:0")
	} else {
		conn, err = n.ListenPacket("udp4", "0.0.0.0:0")
	}
	if err != nil {
		t.Fatalf("client socket: %v", err)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server.String(),
		TURNServerAddr: server.String(),
		Username:       username,
		Password:       password,
		Conn:           conn,
		Net:            n,
		RTO:            100 * time.Millisecond,
		LoggerFactory:  pionlog.Factory{Log: testLogger(t, "client")},
	})
	if err != nil {
		_ = conn.Close()
		t.Fatalf("turn.NewClient: %v", err)
	}
	if err := c.Listen(); err != nil {
		_ = conn.Close()
		t.Fatalf("client Listen: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return &client{Client: c, conn: conn}
}

// allocate makes an allocation; cleanup releases it.
func (c *client) allocate(t *testing.T) (net.PacketConn, error) {
	t.Helper()
	relay, err := c.Allocate()
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = relay.Close() })
	return relay, nil
}

// turnCode returns the STUN error code of a refused request, or 0.
func turnCode(err error) stun.ErrorCode {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return te.ErrorCodeAttr.Code
	}
	var tv stun.TurnError
	if errors.As(err, &tv) {
		return tv.ErrorCodeAttr.Code
	}
	return 0
}

// waitFor polls cond every few milliseconds for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
