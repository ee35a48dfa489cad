package mesh

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/readymesh/readymesh/peer/wire"
)

// noUDP is the host's network with UDP refused, as Wine 8 refuses it.
type noUDP struct{ transport.Net }

func (noUDP) ListenPacket(network, addr string) (net.PacketConn, error) {
	return nil, errors.New("wsaioctl: winapi error #10045")
}

// TestRelayOnlyWithoutUDP: an agent that cannot open any UDP socket still
// listens, offers no direct candidates, and serves a session over the
// relay, through the in-memory loopback.
func TestRelayOnlyWithoutUDP(t *testing.T) {
	host, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	p := newPair(t, noUDP{host})
	if p.l.hub == nil {
		t.Fatal("the listener opened a UDP socket through a network that refuses UDP")
	}
	s, err := Dial(ctxT(t, 15*time.Second), p.dialConfig(wire.ModeReadOnly, wire.TransportAuto, true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path().Kind != wire.PathRelayed {
		t.Fatalf("path %v, want relayed", s.Path())
	}
	checkSession(t, s)
	waitFor(t, func() bool {
		ss := p.l.Sessions()
		return len(ss) == 1 && strings.HasPrefix(ss[0].Path, wire.PathRelayed)
	}, "agent reports the relayed path")
}

func TestMemConnDeliversAndDrops(t *testing.T) {
	h := newMemHub()
	a, _ := h.listen()
	b, _ := h.listen()
	defer a.Close()
	if _, err := a.WriteTo([]byte("hi"), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	b.SetReadDeadline(time.Now().Add(time.Second))
	n, from, err := b.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hi" || from.String() != a.LocalAddr().String() {
		t.Fatalf("read %q from %v: %v", buf[:n], from, err)
	}
	if _, err := a.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}); !errors.Is(err, errNoUDP) {
		t.Fatalf("write to a real address: %v, want errNoUDP", err)
	}
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := b.ReadFrom(buf); !errors.Is(err, errDeadline()) {
		t.Fatalf("read past the deadline: %v", err)
	}
	b.Close()
	if _, _, err := b.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	// A closed port drops, as UDP would.
	if n, err := a.WriteTo([]byte("late"), b.LocalAddr()); err != nil || n != 4 {
		t.Fatalf("write to a closed port: %d, %v", n, err)
	}
}

func errDeadline() error { return os.ErrDeadlineExceeded }

// TestDialWithoutUDP: a technician on a host without UDP (meshctl under
// Wine) reaches an agent over the relay, and asking for a direct QUIC
// path says why it cannot.
func TestDialWithoutUDP(t *testing.T) {
	host, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	p := newPair(t, nil)
	cfg := p.dialConfig(wire.ModeReadOnly, wire.TransportAuto, true)
	cfg.Net = noUDP{host}
	s, err := Dial(ctxT(t, 15*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path().Kind != wire.PathRelayed {
		t.Fatalf("path %v, want relayed", s.Path())
	}
	checkSession(t, s)
	cfg = p.dialConfig(wire.ModeReadOnly, wire.TransportQUIC, false)
	cfg.Net = noUDP{host}
	if _, err := Dial(ctxT(t, 5*time.Second), cfg); err == nil || !strings.Contains(err.Error(), "only the relay works") {
		t.Fatalf("direct QUIC without UDP: %v", err)
	}
}

func TestRelayOnlyOnlyWithoutAChosenPort(t *testing.T) {
	for addr, want := range map[string]bool{"": true, ":0": true, "127.0.0.1:0": true, "[::]:0": true,
		"0.0.0.0:41641": false, "127.0.0.1:7400": false, "garbage": false} {
		if got := relayOnlyAllowed(addr); got != want {
			t.Errorf("relayOnlyAllowed(%q) = %v, want %v", addr, got, want)
		}
	}
}
