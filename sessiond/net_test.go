package sessiond

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/vnet"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// Addresses on the test's virtual network. None is an address of this
// machine, so a real socket cannot reach them.
const (
	agentIP  = "1.2.3.10"
	brokerIP = "1.2.3.4"
)

// TestAgentSocketsFromNet: with Config.Net and EnrollConfig.Net an agent
// takes its UDP sockets from the injected network. On a pion vnet, the
// enrolment's bridge host and the agent's reach a stand-in for a broker
// (a bare bridge host) from the agent's vnet address, and the session
// socket's reflexive address, as a STUN server on the vnet sees it, is
// the agent's vnet address and session port.
func TestAgentSocketsFromNet(t *testing.T) {
	agentNet, brokerNet := newVnet(t)
	broker, info := newStandIn(t, brokerNet)
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := enrollOnVnet(ctx, t, state, info, agentNet)
	if got := <-broker.enrolledFrom; !strings.HasPrefix(got, "/ip4/"+agentIP+"/udp/") {
		t.Errorf("the enrolment came from %s, not the agent's vnet address", got)
	}
	a, err := New(Config{StateDir: state, Net: agentNet, SystemBus: NoSystemBus})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if a.enrolment.MachineID != e.MachineID {
		t.Fatalf("agent is %s, enrolled as %s", a.enrolment.MachineID, e.MachineID)
	}
	checkBridgeOnNet(ctx, t, a, broker.host)
	checkSessionSocketOnNet(ctx, t, a, brokerNet)
}

// newVnet returns two nodes of a virtual WAN: the agent's and the
// broker's.
func newVnet(t *testing.T) (agent, broker transport.Net) {
	t.Helper()
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "0.0.0.0/0", LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	node := func(ip string) transport.Net {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := wan.AddNet(n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	agent, broker = node(agentIP), node(brokerIP)
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wan.Stop() })
	return agent, broker
}

// standIn is a bridge host on the vnet that answers enrolments, standing
// in for a broker.
type standIn struct {
	host         host.Host
	enrolledFrom chan string // the remote address of each enrolment
}

func newStandIn(t *testing.T, n transport.Net) (*standIn, wire.BrokerInfo) {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "broker.key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key, Listen: []string{brokerIP + ":7400"}, Net: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	info := wire.BrokerInfo{PeerID: h.ID().String(), Name: "stand-in"}
	for _, a := range h.Addrs() {
		info.Addrs = append(info.Addrs, a.String()+"/p2p/"+h.ID().String())
	}
	b := &standIn{host: h, enrolledFrom: make(chan string, 1)}
	h.SetStreamHandler(wire.ProtoEnroll, func(s network.Stream) {
		defer s.Close()
		var req wire.Enroll
		if err := wire.NewReader(s).Read(wire.MaxControl, &req); err != nil {
			return
		}
		b.enrolledFrom <- s.Conn().RemoteMultiaddr().String()
		wire.Write(s, &wire.EnrollReply{MachineID: s.Conn().RemotePeer().String(), Name: req.Name, Client: "acme", Broker: info})
	})
	return b, info
}

// checkBridgeOnNet dials the stand-in from the agent's bridge host and
// checks the stand-in sees the agent's vnet address.
func checkBridgeOnNet(ctx context.Context, t *testing.T, a *Agent, broker host.Host) {
	t.Helper()
	ai, err := bridge.AddrInfo(a.enrolment.Broker)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.host.Connect(ctx, ai); err != nil {
		t.Fatalf("the agent's bridge host cannot reach the stand-in on the vnet: %v", err)
	}
	conns := broker.Network().ConnsToPeer(a.host.ID())
	if len(conns) == 0 || !strings.HasPrefix(conns[0].RemoteMultiaddr().String(), "/ip4/"+agentIP+"/udp/") {
		t.Errorf("the stand-in's connections from the agent %v: not from the agent's vnet address", conns)
	}
}

// checkSessionSocketOnNet asks a STUN server on the vnet for the session
// socket's reflexive address.
func checkSessionSocketOnNet(ctx context.Context, t *testing.T, a *Agent, n transport.Net) {
	t.Helper()
	srv := serveSTUN(t, n, brokerIP+":3478")
	got, err := a.sessions.Reflexive(ctx, srv)
	if err != nil {
		t.Fatalf("the session socket cannot reach a STUN server on the vnet: %v", err)
	}
	want := netip.AddrPortFrom(netip.MustParseAddr(agentIP), uint16(a.sessions.Port()))
	if got != want {
		t.Errorf("the session socket is %s as the vnet sees it, want %s", got, want)
	}
}

// serveSTUN answers STUN binding requests on n at addr with the sender's
// address, until the test ends.
func serveSTUN(t *testing.T, n transport.Net, addr string) netip.AddrPort {
	t.Helper()
	c, err := n.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			k, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:k]...)}
			ua, ok := from.(*net.UDPAddr)
			if req.Decode() != nil || req.Type != stun.BindingRequest || !ok {
				continue
			}
			res, err := stun.Build(req, stun.BindingSuccess, &stun.XORMappedAddress{IP: ua.IP, Port: ua.Port}, stun.Fingerprint)
			if err == nil {
				c.WriteTo(res.Raw, from)
			}
		}
	}()
	return netip.MustParseAddrPort(addr)
}

// enrollOnVnet enrols an agent named pc-1 in state with the stand-in
// broker info, over agentNet.
func enrollOnVnet(ctx context.Context, t *testing.T, state string, info wire.BrokerInfo, agentNet transport.Net) localdb.Enrolment {
	t.Helper()
	tok := wire.Token{Kind: wire.KindEnroll, Secret: wire.NewSecret(), Broker: info}
	e, err := Enroll(ctx, EnrollConfig{StateDir: state, Token: tok.String(), Name: "pc-1", Net: agentNet})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
