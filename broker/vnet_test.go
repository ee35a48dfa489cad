package broker

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond"
)

// Addresses of the virtual internet: the broker and the technician are
// public, the agent sits behind its office's NAT router.
const (
	vnetBroker = "1.2.3.4"
	vnetTech   = "1.2.3.6"
	vnetOffice = "1.2.3.5" // the office router's public address
	vnetAgent  = "10.0.0.2"
)

// vnetWorld is a pion virtual internet: one WAN with the broker and the
// technician on it, and an office LAN behind a port-restricted cone NAT
// with the agent on it.
type vnetWorld struct {
	broker, tech, agent *vnet.Net
}

func newVnetWorld(t *testing.T) *vnetWorld {
	t.Helper()
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "0.0.0.0/0", LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	office, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", StaticIPs: []string{vnetOffice},
		NATType:       &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrPortDependent},
		LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	host := func(r *vnet.Router, ip string) *vnet.Net {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.AddNet(n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	w := &vnetWorld{broker: host(wan, vnetBroker), tech: host(wan, vnetTech), agent: host(office, vnetAgent)}
	if err := wan.AddRouter(office); err != nil {
		t.Fatal(err)
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wan.Stop() })
	return w
}

// TestBrokerAndAgentOnVnet runs a whole broker, a whole agent and a
// technician on pion's virtual network, with no real socket between them:
// the network is injected through broker.Config.Net, sessiond.Config.Net
// and bridge.HostConfig.Net. The agent enrols, checks in and shows online;
// the technician opens a live session through the broker, which is
// punched direct through the office NAT, and echoes bytes over it.
func TestBrokerAndAgentOnVnet(t *testing.T) {
	w := newVnetWorld(t)
	tb := startBroker(t, func(c *Config) {
		c.Net = w.broker
		c.Listen = []string{vnetBroker + ":7400"}
		c.STUN = vnetBroker + ":3478"
	})
	if tb.info.HTTP != "" || len(tb.info.Addrs) != 1 || !strings.HasPrefix(tb.info.Addrs[0], "/ip4/"+vnetBroker+"/udp/7400/quic-v1/") {
		t.Fatalf("broker info %+v: want only QUIC on the vnet and no HTTP", tb.info)
	}
	admin := tb.adminOn(t, w.tech)
	tb.createClient(admin, "acme")
	tok := tb.token(admin, "acme", 1, time.Hour)

	id := runVnetAgent(t, w.agent, tok, "fs01")
	waitFor(t, 20*time.Second, "agent online and checked in", func() bool {
		c, ok := admin.card(id)
		return ok && c.Reachability.Online && c.Readiness.LastCheckIn != nil
	})
	c, _ := admin.card(id)
	if c.Reachability.Broker != tb.info.Name || c.Readiness.OS == nil || !strings.Contains(c.Readiness.OS.Name, "Windows Server") {
		t.Errorf("card %+v: want the fixture's OS, online through %s", c, tb.info.Name)
	}

	s := dialVnet(t, tb, admin, w.tech, "acme/fs01")
	defer s.Close()
	echo(t, s)
	deadline := time.After(15 * time.Second)
	for s.Path().Kind != wire.PathDirectQUIC {
		select {
		case <-s.PathChanged():
		case <-deadline:
			t.Fatalf("path %v: the session never went direct through the port-restricted NAT", s.Path())
		}
	}
	if ap, err := netip.ParseAddrPort(s.Path().Remote); err != nil || ap.Addr().String() != vnetOffice {
		t.Errorf("direct path %v: want the office router's public address %s", s.Path(), vnetOffice)
	}
	echo(t, s)
	waitFor(t, 10*time.Second, "the card's session part", func() bool {
		c, _ := admin.card(id)
		return c.Session != nil && c.Session.State == "active" && strings.HasPrefix(c.Session.Path, wire.PathDirectQUIC)
	})
}

// runVnetAgent enrols and runs a sessiond agent on n, playing the
// acme-fs01 fixture, and returns its machine ID.
func runVnetAgent(t *testing.T, n *vnet.Net, tok wire.Token, name string) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := sessiond.Enroll(ctx, sessiond.EnrollConfig{StateDir: dir, Token: tok.String(), Name: name, Net: n})
	if err != nil {
		t.Fatalf("enrol on the vnet: %v", err)
	}
	lg := newTestLog(t, "agent:")
	a, err := sessiond.New(sessiond.Config{StateDir: dir, Net: n, SystemBus: sessiond.NoSystemBus, Logger: slog.New(lg),
		Inventory: filepath.Join("..", "integration", "demo", "fixtures", "acme-fs01.json")})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("agent Run did not return within 10s of cancel")
		}
		lg.stop()
	})
	return e.MachineID
}

// dialVnet opens a session to machine as c, on n, as meshctl connect does.
func dialVnet(t *testing.T, tb *testBroker, c *testClient, n *vnet.Net, machine string) *mesh.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mesh.Dial(ctx, mesh.DialConfig{Key: c.key, Broker: c.broker, Net: n,
		STUN: netip.AddrPortFrom(netip.MustParseAddr(vnetBroker), 3478),
		Relay: func(ctx context.Context, session string) (io.ReadWriteCloser, error) {
			return bridge.OpenRelay(ctx, c.h, c.broker, session)
		},
		Signal: func(ctx context.Context, p wire.PeerParams, sig []byte, token string) (*wire.SessionResult, error) {
			var r wire.SessionResult
			args := wire.SessionArgs{Machine: machine, Mode: wire.ModeReadOnly, Transport: wire.TransportAuto,
				Params: p, Sig: sig, StunToken: token}
			c.mustTech(wire.OpSessionOpen, args, &r)
			return &r, nil
		}})
	if err != nil {
		t.Fatalf("session on the vnet: %v", err)
	}
	return s
}

// echo sends bytes on the session's echo channel and checks they return.
func echo(t *testing.T, s *mesh.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.Open(ctx, mesh.ChanEcho)
	if err != nil {
		t.Fatalf("open echo: %v", err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	want := []byte("over the virtual internet")
	if _, err := st.Write(want); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(st, got); err != nil || string(got) != string(want) {
		t.Fatalf("echo: %q, %v", got, err)
	}
}
