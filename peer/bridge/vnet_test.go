package bridge

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"

	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestHostOnVnet: with HostConfig.Net a host's every socket is the
// injected network's. Two hosts on a pion vnet, one listening, talk over
// QUIC, and the TCP and WebSocket parts of a host:port listen spec are
// dropped (vnet carries UDP only).
func TestHostOnVnet(t *testing.T) {
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "0.0.0.0/0", LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	newHost := func(ip string, listen []string) host.Host {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := wan.AddNet(n); err != nil {
			t.Fatal(err)
		}
		key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "host.key"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := NewHost(HostConfig{Key: key, Listen: listen, Net: n})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	server := newHost("1.2.3.4", []string{"1.2.3.4:7400"})
	client := newHost("1.2.3.5", nil)
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wan.Stop() })
	addrs := server.Addrs()
	if len(addrs) != 1 || addrs[0].String() != "/ip4/1.2.3.4/udp/7400/quic-v1" {
		t.Fatalf("server listens on %v, want only /ip4/1.2.3.4/udp/7400/quic-v1", addrs)
	}
	server.SetStreamHandler(testProto, answer(nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: addrs}); err != nil {
		t.Fatal(err)
	}
	var reply wire.HelloReply
	if err := Call(ctx, client, server.ID(), testProto, &wire.Hello{MachineID: "m1"}, &reply, wire.MaxControl); err != nil {
		t.Fatal(err)
	}
	if len(reply.Brokers) != 1 || reply.Brokers[0].PeerID != "m1" {
		t.Errorf("reply %+v", reply)
	}
	// The server saw the client's vnet address: no real socket carried it.
	conns := server.Network().ConnsToPeer(client.ID())
	if len(conns) != 1 || !strings.HasPrefix(conns[0].RemoteMultiaddr().String(), "/ip4/1.2.3.5/udp/") {
		t.Errorf("server's connection %v: not from the client's vnet address", conns)
	}
}
