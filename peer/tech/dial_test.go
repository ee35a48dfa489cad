package tech

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

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

// TestConnectRetriesSilence: a broker too busy even to refuse drops a
// connection's Initials; connect gives up on that connection after
// attemptLimit and is admitted with a fresh one, where one long try
// waits out its whole deadline.
func TestConnectRetriesSilence(t *testing.T) {
	defer func(d time.Duration) { attemptLimit = d }(attemptLimit)
	attemptLimit = 500 * time.Millisecond
	server := newTestHost(t, bridge.HostConfig{Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	front := dropFirstConn(t, server.Addrs())
	ai := peer.AddrInfo{ID: server.ID(), Addrs: []ma.Multiaddr{front}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := connect(ctx, newTestHost(t, bridge.HostConfig{}), ai); err != nil {
		t.Fatalf("connect through a broker that dropped the first connection: %v", err)
	}
}

// dropFirstConn starts a UDP relay on loopback in front of the QUIC
// address among addrs and returns its address. It drops every datagram
// of the first QUIC connection a client starts (by the destination
// connection ID of its long-header packets), and relays the rest both
// ways, for one client.
func dropFirstConn(t *testing.T, addrs []ma.Multiaddr) ma.Multiaddr {
	t.Helper()
	var target *net.UDPAddr
	for _, a := range addrs {
		if !strings.HasSuffix(a.String(), "/quic-v1") {
			continue
		}
		if na, err := manet.ToNetAddr(a.Decapsulate(ma.StringCast("/quic-v1"))); err == nil {
			target, _ = na.(*net.UDPAddr)
		}
	}
	if target == nil {
		t.Fatalf("no QUIC address in %v", addrs)
	}
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp4", nil, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close(); back.Close() })
	var client atomic.Pointer[net.UDPAddr]
	go func() { // broker → client
		buf := make([]byte, 2048)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			if c := client.Load(); c != nil {
				front.WriteToUDP(buf[:n], c)
			}
		}
	}()
	go func() { // client → broker, less the first connection
		buf := make([]byte, 2048)
		var blocked []byte
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(from)
			p := buf[:n]
			// Long header: flags, version (4), DCID length, DCID.
			if n > 6 && p[0]&0x80 != 0 && n >= 6+int(p[5]) {
				dcid := p[6 : 6+int(p[5])]
				if blocked == nil {
					blocked = append([]byte(nil), dcid...)
				}
				if bytes.Equal(dcid, blocked) {
					continue
				}
			}
			back.Write(p)
		}
	}()
	port := front.LocalAddr().(*net.UDPAddr).Port
	return ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port))
}
