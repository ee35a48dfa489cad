package sessiond

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
)

// A broker that comes back on its address is reached by the agent's next
// try, whatever libp2p's dial backoff says after the failed one before.
func TestDialBrokerSkipsLibp2pBackoff(t *testing.T) {
	key := func() *identity.Key {
		k, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "key"))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	agent, err := bridge.NewHost(bridge.HostConfig{Key: key()})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()

	// A free loopback UDP port, where the broker will be.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	addr := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port))
	brokerKey := key()
	ai := peer.AddrInfo{ID: brokerKey.ID, Addrs: []ma.Multiaddr{addr}}

	// First the address answers with another key, as when a broker is
	// replaced: the dial fails, and libp2p puts the address on backoff.
	impostor, err := bridge.NewHost(bridge.HostConfig{Key: key(), Listen: []string{addr.String()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err = dialBroker(ctx, agent, ai)
	cancel()
	impostor.Close()
	if err == nil {
		t.Fatal("dialled the broker's key at another host's address")
	}
	t.Logf("first dial: %v", err)

	broker, err := bridge.NewHost(bridge.HostConfig{Key: brokerKey, Listen: []string{addr.String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := dialBroker(ctx, agent, ai); err != nil {
		t.Fatalf("broker back on %s, but the next dial failed: %v", addr, err)
	}
}
