package rtc

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/readymesh/readymesh/mesh/internal/pionlog"
	"github.com/readymesh/readymesh/mesh/turnserver"
)

// testLogger logs through t; RTC_DEBUG=1 shows debug logs.
func testLogger(t testing.TB, name string) *slog.Logger {
	return pionlog.TestLogger(t, name, "RTC_DEBUG")
}

// checkLeaks fails t if goroutines are still running after the test.
func checkLeaks(t *testing.T) { pionlog.CheckLeaks(t) }

// pair is an open session seen from both sides.
type pair struct {
	off, ans *Session
	// setup is Offer → both sessions open; connect is Accept's share of it
	// (ICE checks, DTLS, SCTP), after both sides gathered.
	setup, connect time.Duration
}

// connect runs a whole session setup between two configs, moving the SDP
// as the signalling layer would. Cleanup closes both sides.
func connect(t testing.TB, ctx context.Context, offCfg, ansCfg Config) pair {
	t.Helper()
	start := time.Now()
	o, offer, err := Offer(ctx, offCfg)
	if err != nil {
		t.Fatalf("Offer: %v", err)
	}
	t.Cleanup(func() { _ = o.Close() })
	a, answer, err := Answer(ctx, ansCfg, offer)
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })

	type result struct {
		s   *Session
		err error
	}
	ansc := make(chan result, 1)
	go func() {
		s, err := a.Session(ctx)
		ansc <- result{s, err}
	}()
	accepting := time.Now()
	off, err := o.Accept(ctx, answer)
	connectTime := time.Since(accepting)
	ans := <-ansc
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if ans.err != nil {
		t.Fatalf("answerer Session: %v", ans.err)
	}
	return pair{off: off, ans: ans.s, setup: time.Since(start), connect: connectTime}
}

// checkEcho sends a few messages on the echo channel and expects each back.
func checkEcho(t testing.TB, s *Session) {
	t.Helper()
	buf := make([]byte, maxMessage)
	for i, msg := range [][]byte{[]byte("hello"), bytes.Repeat([]byte{0xa5}, 1200), randomBytes(t, maxMessage)} {
		if _, err := s.Echo().Write(msg); err != nil {
			t.Fatalf("echo write %d: %v", i, err)
		}
		n, err := s.Echo().Read(buf)
		if err != nil {
			t.Fatalf("echo read %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], msg) {
			t.Fatalf("echo %d: got %d bytes back, want the %d sent", i, n, len(msg))
		}
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// lab is an in-process internet (pion vnet): a WAN with the broker's
// STUN/TURN server from package turnserver, and LAN routers behind it.
type lab struct {
	t    *testing.T
	wan  *vnet.Router
	ice  []webrtc.ICEServer
	lans int
}

const labBrokerIP = "203.0.113.10"

// newLab makes the WAN; every packet that crosses it is delayed by delay.
func newLab(t *testing.T, delay time.Duration) *lab {
	t.Helper()
	wan, err := vnet.NewRouter(&vnet.RouterConfig{
		CIDR: "0.0.0.0/0", MinDelay: delay, LoggerFactory: pionlog.Factory{Log: testLogger(t, "vnet")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &lab{t: t, wan: wan}
}

// addLAN adds a router with nat behind the WAN and hosts on it; their
// addresses are 10.0.<lan>.2, .3, …
func (l *lab) addLAN(nat *vnet.NATType, hosts int) []*vnet.Net {
	l.t.Helper()
	l.lans++
	prefix := "10.0." + strconv.Itoa(l.lans) + "."
	lan, err := vnet.NewRouter(&vnet.RouterConfig{
		StaticIPs:     []string{"198.51.100." + strconv.Itoa(l.lans)},
		CIDR:          prefix + "0/24",
		NATType:       nat,
		LoggerFactory: pionlog.Factory{Log: testLogger(l.t, "vnet")},
	})
	if err != nil {
		l.t.Fatal(err)
	}
	var nets []*vnet.Net
	for i := range hosts {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{prefix + strconv.Itoa(2+i)}})
		if err != nil {
			l.t.Fatal(err)
		}
		if err := lan.AddNet(n); err != nil {
			l.t.Fatal(err)
		}
		nets = append(nets, n)
	}
	if err := l.wan.AddRouter(lan); err != nil {
		l.t.Fatal(err)
	}
	return nets
}

// start starts the routers and the broker's STUN/TURN server.
func (l *lab) start() {
	l.t.Helper()
	brokerNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{labBrokerIP}})
	if err != nil {
		l.t.Fatal(err)
	}
	if err := l.wan.AddNet(brokerNet); err != nil {
		l.t.Fatal(err)
	}
	if err := l.wan.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = l.wan.Stop() })
	pc, err := brokerNet.ListenPacket("udp4", labBrokerIP+":3478")
	if err != nil {
		l.t.Fatal(err)
	}
	secret := randomBytes(l.t, 32)
	srv, err := turnserver.New(turnserver.Config{
		PacketConn: pc, RelayNet: brokerNet, Secret: secret, Logger: testLogger(l.t, "turn"),
	})
	if err != nil {
		l.t.Fatalf("turnserver: %v", err)
	}
	l.t.Cleanup(func() { _ = srv.Close() })
	l.ice = iceServers(srv.Addr(), secret)
}

// iceServers points ICE at a turnserver with fresh credentials.
func iceServers(addr net.Addr, secret []byte) []webrtc.ICEServer {
	user, pass := turnserver.Credentials(secret, "session", time.Now().Add(time.Hour))
	return []webrtc.ICEServer{
		{URLs: []string{"stun:" + addr.String()}},
		{URLs: []string{"turn:" + addr.String() + "?transport=udp"}, Username: user, Credential: pass},
	}
}
