package tech

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
)

func newTestHost(t *testing.T, cfg bridge.HostConfig) host.Host {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "host.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Key = key
	h, err := bridge.NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestConnectRetriesRefusal: a broker past its accept rate refuses a
// technician's connection; connect tries again until it is admitted,
// where a plain dial fails.
func TestConnectRetriesRefusal(t *testing.T) {
	server := newTestHost(t, bridge.HostConfig{Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		MaxConns: 100, AcceptRate: 2})
	ai := peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 { // the burst
		if err := newTestHost(t, bridge.HostConfig{}).Connect(ctx, ai); err != nil {
			t.Fatal(err)
		}
	}
	if err := newTestHost(t, bridge.HostConfig{}).Connect(ctx, ai); err == nil || !refused(err) {
		t.Fatalf("a plain dial past the burst: %v, want refused", err)
	}
	if err := connect(ctx, newTestHost(t, bridge.HostConfig{}), ai); err != nil {
		t.Fatalf("connect past the burst: %v", err)
	}
}
