package bridge

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/identity"
)

func testKey(t *testing.T, name string) *identity.Key {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestAcceptRate: a host admits new connections from all addresses at
// AcceptRate a second; past the burst, a newcomer is refused while the
// connections already admitted keep working.
func TestAcceptRate(t *testing.T) {
	server, err := NewHost(HostConfig{Key: testKey(t, "server"), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		MaxConns: 100, AcceptRate: 0.05}) // a burst of one, then one per 20 s
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	target := peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}
	var admitted int
	for i := range 3 {
		client, err := NewHost(HostConfig{Key: testKey(t, "client")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = client.Connect(ctx, target)
		cancel()
		if err == nil {
			admitted++
		} else {
			t.Logf("client %d refused: %v", i, err)
		}
	}
	if admitted != 1 {
		t.Errorf("%d of 3 connections admitted at a burst of one, want 1", admitted)
	}
	if n := len(server.Network().Conns()); n != 1 {
		t.Errorf("server holds %d connections, want the one admitted", n)
	}
}
