package tech

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

func loadKey(t *testing.T, home string) *identity.Key {
	t.Helper()
	k, err := identity.Load(filepath.Join(home, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// blackHole is a broker that died with its host: its UDP port takes
// packets and never answers, so a QUIC handshake to it times out (5 s).
func blackHole(t *testing.T) wire.BrokerInfo {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	id := newTestHost(t, bridge.HostConfig{}).ID().String() // a peer that is not there
	return wire.BrokerInfo{PeerID: id, Name: "dead", Region: "eu",
		Addrs: []string{"/ip4/127.0.0.1/udp/" + portOf(pc.LocalAddr()) + "/quic-v1/p2p/" + id}}
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// TestOpenSkipsSilentBroker: with the login broker silent, a command
// reaches the next broker of its list within its time budget (4 s here),
// which is shorter than one handshake timeout to the silent one.
func TestOpenSkipsSilentBroker(t *testing.T) {
	live := newFakeBroker(t)
	home := loggedIn(t, live)
	cfg := Config{Broker: blackHole(t), Technician: wire.Technician{Name: "tina"}, Brokers: []wire.BrokerInfo{live.info()}}
	if err := saveConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	c, err := Open(ctx, home)
	if err != nil {
		t.Fatalf("Open with a silent login broker: %v", err)
	}
	defer c.Close()
	if c.info.PeerID != live.info().PeerID {
		t.Fatalf("connected to %s, want the live broker", c.info.Name)
	}
}

// TestDialFirstPrefersOrder: when every candidate answers, the first wins
// and the others are never dialled; when none does, the error names each.
func TestDialFirstPrefersOrder(t *testing.T) {
	a, b := newFakeBroker(t), newFakeBroker(t)
	key := loadKey(t, loggedIn(t, a))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialFirst(ctx, key, []wire.BrokerInfo{a.info(), b.info()}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.info.PeerID != a.info().PeerID {
		t.Errorf("connected to the second broker though the first answered")
	}
	dead1, dead2 := blackHole(t), blackHole(t)
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	_, err = dialFirst(short, key, []wire.BrokerInfo{dead1, dead2}, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), dead1.PeerID) || !strings.Contains(err.Error(), dead2.PeerID) {
		t.Errorf("no broker answering: %v, want an error naming both", err)
	}
}
