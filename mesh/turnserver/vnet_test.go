package turnserver

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/pion/transport/v5/vnet"

	"github.com/readymesh/readymesh/mesh/internal/pionlog"
)

// TestVNetBehindNAT runs the server on a pion vnet "internet" with two
// clients behind symmetric NATs, the case TURN exists for: each client
// learns its NAT-mapped address from Binding, and packets relay between
// them although no direct path exists.
func TestVNetBehindNAT(t *testing.T) {
	checkLeaks(t)
	const serverIP = "203.0.113.10"
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "0.0.0.0/0", LoggerFactory: pionlog.Factory{Log: testLogger(t, "vnet")}})
	if err != nil {
		t.Fatal(err)
	}
	wanNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{serverIP}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(wanNet); err != nil {
		t.Fatal(err)
	}
	symmetric := &vnet.NATType{
		MappingBehavior:   vnet.EndpointAddrPortDependent,
		FilteringBehavior: vnet.EndpointAddrPortDependent,
	}
	lanA := addLAN(t, wan, "198.51.100.1", "192.168.1.0/24", "192.168.1.2", symmetric)
	lanB := addLAN(t, wan, "198.51.100.2", "10.0.0.0/24", "10.0.0.2", symmetric)
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wan.Stop() })

	pc, err := wanNet.ListenPacket("udp4", serverIP+":3478")
	if err != nil {
		t.Fatal(err)
	}
	secret := testSecret(t)
	s, err := New(Config{PacketConn: pc, RelayNet: wanNet, Secret: secret, Logger: testLogger(t, "turn")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if got := s.Addr().String(); got != serverIP+":3478" {
		t.Fatalf("Addr = %s", got)
	}

	user, pass := Credentials(secret, "tech", time.Now().Add(time.Hour))
	a := newClient(t, lanA, s.Addr(), user, pass)
	b := newClient(t, lanB, s.Addr(), user, pass)

	mapped, err := a.SendBindingRequest()
	if err != nil {
		t.Fatalf("Binding: %v", err)
	}
	if ip := mapped.(*net.UDPAddr).IP.String(); ip != "198.51.100.1" {
		t.Fatalf("Binding mapped address %v, want the NAT's public IP 198.51.100.1", mapped)
	}

	relayA, err := a.allocate(t)
	if err != nil {
		t.Fatalf("allocate A: %v", err)
	}
	relayB, err := b.allocate(t)
	if err != nil {
		t.Fatalf("allocate B: %v", err)
	}
	if ip := relayA.LocalAddr().(*net.UDPAddr).IP.String(); ip != serverIP {
		t.Fatalf("relayed address %v, want on %s", relayA.LocalAddr(), serverIP)
	}
	if err := a.CreatePermission(relayB.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if err := b.CreatePermission(relayA.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	msg := []byte("through two symmetric NATs")
	if _, err := relayA.WriteTo(msg, relayB.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = relayB.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := relayB.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("B got %q, %v; want %q", buf[:n], err, msg)
	}
}

// addLAN adds a router with the given NAT behind wan and one host on it.
func addLAN(t *testing.T, wan *vnet.Router, publicIP, cidr, hostIP string, nat *vnet.NATType) *vnet.Net {
	t.Helper()
	lan, err := vnet.NewRouter(&vnet.RouterConfig{
		StaticIPs:     []string{publicIP},
		CIDR:          cidr,
		NATType:       nat,
		LoggerFactory: pionlog.Factory{Log: testLogger(t, "vnet")},
	})
	if err != nil {
		t.Fatal(err)
	}
	host, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{hostIP}})
	if err != nil {
		t.Fatal(err)
	}
	if err := lan.AddNet(host); err != nil {
		t.Fatal(err)
	}
	if err := wan.AddRouter(lan); err != nil {
		t.Fatal(err)
	}
	return host
}
