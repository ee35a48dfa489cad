package mesh

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/vnet"

	"github.com/readymesh/readymesh/peer/wire"
)

// natKind is a site's NAT in RFC 4787 terms.
type natKind struct {
	name string
	nat  *vnet.NATType // nil: the host sits on the public segment
}

var natKinds = []natKind{
	{name: "public"},
	{name: "full-cone", nat: &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointIndependent}},
	{name: "restricted-cone", nat: &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrDependent}},
	{name: "port-restricted", nat: &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrPortDependent}},
	{name: "symmetric", nat: &vnet.NATType{MappingBehavior: vnet.EndpointAddrPortDependent, FilteringBehavior: vnet.EndpointAddrPortDependent}},
}

// directPossible is RFC 4787's answer for two sites punching with
// server-reflexive candidates and peer-reflexive learning, no port
// prediction: a side whose mapping depends on the destination (symmetric)
// shows the other side a port nobody could announce, so the other side
// must accept packets from an unannounced port of an address it has sent
// to (no NAT, endpoint-independent or address-dependent filtering). Two
// such sides never meet.
func directPossible(a, b natKind) bool {
	sym := func(k natKind) bool { return k.nat != nil && k.nat.MappingBehavior != vnet.EndpointIndependent }
	admits := func(k natKind) bool { return k.nat == nil || k.nat.FilteringBehavior != vnet.EndpointAddrPortDependent }
	switch {
	case sym(a) && sym(b):
		return false
	case sym(a):
		return admits(b)
	case sym(b):
		return admits(a)
	}
	return true
}

// vnetBuild guards pion vnet's global MAC address counter: labs are built
// one at a time.
var vnetBuild sync.Mutex

// vnetLab is a WAN with a STUN server and sites behind NATs.
type vnetLab struct {
	wan   *vnet.Router
	stun  net.PacketConn
	sites int
}

func newVnetLab(t *testing.T) (*vnetLab, *Observer) {
	t.Helper()
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "0.0.0.0/0", LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"1.2.3.4"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(srv); err != nil {
		t.Fatal(err)
	}
	l := &vnetLab{wan: wan}
	return l, l.startSTUN(t, srv)
}

func (l *vnetLab) startSTUN(t *testing.T, srv *vnet.Net) *Observer {
	pc, err := srv.ListenPacket("udp4", "1.2.3.4:3478")
	if err != nil {
		t.Fatal(err)
	}
	l.stun = pc
	obs := NewObserver()
	go obs.Serve(pc)
	t.Cleanup(func() { pc.Close() })
	return obs
}

// site adds a host behind k and returns its network.
func (l *vnetLab) site(t *testing.T, k natKind) transport.Net {
	t.Helper()
	l.sites++
	i := l.sites
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	if k.nat == nil {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{fmt.Sprintf("1.2.3.%d", 100+i)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.wan.AddNet(n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	nt := *k.nat
	nt.MappingLifeTime = 30 * time.Second
	lan, err := vnet.NewRouter(&vnet.RouterConfig{StaticIPs: []string{fmt.Sprintf("1.2.3.%d", 10+i)},
		CIDR: fmt.Sprintf("10.0.%d.0/24", i), NATType: &nt, LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{fmt.Sprintf("10.0.%d.2", i)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := lan.AddNet(n); err != nil {
		t.Fatal(err)
	}
	if err := l.wan.AddRouter(lan); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNATMatrixVnet connects a technician at each NAT kind to an agent at
// each, in process on pion's vnet: every pair connects (relay first when
// it is ready first), and every pair RFC 4787 allows ends on a direct path
// within the punch window; the others stay relayed.
func TestNATMatrixVnet(t *testing.T) {
	for _, tk := range natKinds {
		for _, ak := range natKinds {
			t.Run(tk.name+"→"+ak.name, func(t *testing.T) {
				t.Parallel()
				// pion's vnet numbers MAC addresses from an unguarded
				// global: build labs one at a time, run them in parallel.
				vnetBuild.Lock()
				lab, obs := newVnetLab(t)
				techNet, agentNet := lab.site(t, tk), lab.site(t, ak)
				vnetBuild.Unlock()
				if err := lab.wan.Start(); err != nil {
					t.Fatal(err)
				}
				defer lab.wan.Stop()
				p := newPair(t, agentNet)
				p.b.stun = mustAddrPort(t, "1.2.3.4:3478")
				p.b.obs = obs
				cfg := p.dialConfig(wire.ModeReadOnly, wire.TransportAuto, true)
				cfg.Net = techNet
				s, err := Dial(ctxT(t, 15*time.Second), cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				first := s.Path()
				want := directPossible(tk, ak)
				deadline := time.Now().Add(4 * time.Second)
				for time.Now().Before(deadline) && (s.Path().Kind == wire.PathDirectQUIC) != want {
					select {
					case <-s.PathChanged():
					case <-time.After(100 * time.Millisecond):
					}
				}
				got := s.Path().Kind == wire.PathDirectQUIC
				if got != want {
					t.Fatalf("path %v; direct possible by RFC 4787: %v", s.Path(), want)
				}
				t.Logf("setup %v on %v, now %v (direct possible: %v)", s.Setup.Round(time.Millisecond), first, s.Path(), want)
				checkSession(t, s)
				// The agent's view agrees with the technician's.
				waitFor(t, func() bool {
					ss := p.l.Sessions()
					return len(ss) == 1 && (ss[0].Path == wire.PathDirectQUIC) == want
				}, "agent reports the same path")
			})
		}
	}
}

// TestUpgradeKeepsStream starts a session on the relay (the agent probes
// late), streams bytes through the move to the direct path, and checks
// every byte arrived and the relay carried only the start.
func TestUpgradeKeepsStream(t *testing.T) {
	lab, obs := newVnetLab(t)
	techNet, agentNet := lab.site(t, natKinds[3]), lab.site(t, natKinds[3])
	if err := lab.wan.Start(); err != nil {
		t.Fatal(err)
	}
	defer lab.wan.Stop()
	p := newPair(t, agentNet)
	p.b.stun, p.b.obs = mustAddrPort(t, "1.2.3.4:3478"), obs
	p.b.punchDelay = 700 * time.Millisecond
	cfg := p.dialConfig(wire.ModeReadOnly, wire.TransportAuto, true)
	cfg.Net = techNet
	s, err := Dial(ctxT(t, 15*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path().Kind != wire.PathRelayed {
		t.Fatalf("started on %v, want the relay (agent probes late)", s.Path())
	}
	changed := s.PathChanged()
	ctx := ctxT(t, 20*time.Second)
	st, err := s.Open(ctx, ChanEcho)
	if err != nil {
		t.Fatal(err)
	}
	// Echo 1 KiB blocks until the path has changed and some more after.
	var sent, moved int
	after := 0
	buf := make([]byte, 1024)
	got := make([]byte, 1024)
	for i := 0; i < 5000 && after < 200; i++ {
		for j := range buf {
			buf[j] = byte(i + j)
		}
		if _, err := st.Write(buf); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if _, err := ioReadFull(st, got); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if string(got) != string(buf) {
			t.Fatalf("block %d came back changed", i)
		}
		sent++
		select {
		case <-changed:
			moved = sent
			changed = make(chan struct{}) // count blocks after the move
		default:
		}
		if moved > 0 {
			after++
		}
		if moved == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if moved == 0 || s.Path().Kind != wire.PathDirectQUIC {
		t.Fatalf("path never moved to direct: %v after %d blocks", s.Path(), sent)
	}
	t.Logf("moved to %v after %d echoed blocks; %d more after the move, all intact", s.Path(), moved, after)
}
