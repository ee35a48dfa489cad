package tech

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// fakeBroker answers technician requests on a loopback host: the broker
// list it is given for OpBrokers, an empty result for anything else.
type fakeBroker struct {
	host host.Host
	mu   sync.Mutex
	list []wire.BrokerMember // mu guards
	asks int
}

func newFakeBroker(t *testing.T) *fakeBroker {
	b := &fakeBroker{host: newTestHost(t, bridge.HostConfig{Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})}
	b.host.SetStreamHandler(wire.ProtoTech, b.serve)
	return b
}

func (b *fakeBroker) serve(s network.Stream) {
	defer s.Close()
	var req wire.Request
	if err := wire.NewReader(s).Read(wire.MaxControl, &req); err != nil {
		s.Reset()
		return
	}
	result := json.RawMessage(`{}`)
	if req.Op == wire.OpBrokers {
		b.mu.Lock()
		result, _ = json.Marshal(b.list)
		b.asks++
		b.mu.Unlock()
	}
	wire.Write(s, &wire.Reply{Result: result})
}

func (b *fakeBroker) set(ms ...wire.BrokerMember) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.list = ms
}

func (b *fakeBroker) info() wire.BrokerInfo {
	var addrs []string
	for _, a := range b.host.Addrs() {
		addrs = append(addrs, a.String()+"/p2p/"+b.host.ID().String())
	}
	return wire.BrokerInfo{PeerID: b.host.ID().String(), Addrs: addrs, Name: "eu-1", Region: "eu"}
}

func member(name, state string) wire.BrokerMember {
	return wire.BrokerMember{Name: name, Region: "eu", State: state, PeerID: "12D3Koo" + name,
		Bridge: []string{"/ip4/127.0.0.1/udp/7400/quic-v1"}}
}

// loggedIn makes a technician home logged in to b with no other brokers
// known, as a login before the cluster grew leaves it.
func loggedIn(t *testing.T, b *fakeBroker) string {
	t.Helper()
	home := t.TempDir()
	if _, _, err := identity.LoadOrCreate(filepath.Join(home, KeyFile)); err != nil {
		t.Fatal(err)
	}
	if err := saveConfig(home, Config{Broker: b.info(), Technician: wire.Technician{Name: "tina"}}); err != nil {
		t.Fatal(err)
	}
	return home
}

func storedNames(t *testing.T, home string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(home, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range cfg.Brokers {
		names = append(names, b.Name)
	}
	return names
}

// TestOpenRefreshesBrokers: any command learns the cluster's brokers over
// its own bridge, and stores those it may fail over to, before it closes.
func TestOpenRefreshesBrokers(t *testing.T) {
	b := newFakeBroker(t)
	home := loggedIn(t, b)
	self := member("eu-1", "alive")
	self.PeerID = b.info().PeerID
	b.set(self, member("eu-2", "alive"), member("eu-3", "suspect"), member("eu-4", "dead"), member("eu-5", "left"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Open(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, wire.OpWhoAmI, nil, nil); err != nil { // the command
		t.Fatal(err)
	}
	c.Close()
	if got, want := storedNames(t, home), []string{"eu-1", "eu-2", "eu-3"}; !slices.Equal(got, want) {
		t.Fatalf("stored %v, want %v: the live brokers", got, want)
	}
	// The next command fails over by the stored list (candidates).
	cfg := c.config()
	var tried []string
	for _, in := range candidates(cfg) {
		tried = append(tried, in.Name)
	}
	if want := []string{"eu-1", "eu-2", "eu-3"}; !slices.Equal(tried, want) {
		t.Errorf("failover order %v, want %v", tried, want)
	}
}

// TestOpenRefreshesWhileOpen: a long-lived client learns of a broker that
// joined while it was open, and an unchanged list is not written again.
func TestOpenRefreshesWhileOpen(t *testing.T) {
	defer func(d time.Duration) { refreshEvery = d }(refreshEvery)
	refreshEvery = 50 * time.Millisecond
	b := newFakeBroker(t)
	home := loggedIn(t, b)
	b.set(member("eu-1", "alive"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Open(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-c.refresh.first
	path := filepath.Join(home, ConfigFile)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	asked := func() int { b.mu.Lock(); defer b.mu.Unlock(); return b.asks }
	for n := asked(); asked() < n+2; {
		time.Sleep(10 * time.Millisecond)
	}
	if after, _ := os.Stat(path); !after.ModTime().Equal(before.ModTime()) {
		t.Error("an unchanged list was written again")
	}
	b.set(member("eu-1", "alive"), member("eu-2", "alive"))
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(storedNames(t, home), []string{"eu-1", "eu-2"}) {
		if time.Now().After(deadline) {
			t.Fatalf("stored %v 5 s after eu-2 joined, want eu-1 and eu-2", storedNames(t, home))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
