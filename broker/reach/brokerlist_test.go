package reach

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// clusterList is a broker list a test changes, counting how often it is read.
type clusterList struct {
	mu    sync.Mutex
	infos []wire.BrokerInfo // mu guards all fields
	left  []string
	reads int
}

func (c *clusterList) Infos() []wire.BrokerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	return slices.Clone(c.infos)
}

func (c *clusterList) Left() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.left)
}

func (c *clusterList) set(infos []wire.BrokerInfo, left ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.infos, c.left = infos, left
}

func (c *clusterList) readCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

var _ Brokers = (*clusterList)(nil)

func brokerInfo(name string, addrs int) wire.BrokerInfo {
	b := wire.BrokerInfo{PeerID: "12D3Koo" + name, Name: name, Region: "eu"}
	for i := range addrs {
		b.Addrs = append(b.Addrs, fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", 4000+i))
	}
	return b
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestBrokerListCache: the membership is read at most once per refresh
// however many streams ask, and a rebuild that finds the same brokers
// keeps the version, so no agent is sent it again.
func TestBrokerListCache(t *testing.T) {
	src := &clusterList{}
	src.set([]wire.BrokerInfo{brokerInfo("eu-1", 2)})
	clk := &clock{t: t0}
	c := &brokerList{src: src, every: time.Second, now: clk.now}
	first := c.get()
	for range 100 {
		if c.get() != first {
			t.Fatal("a get within the refresh built a new version")
		}
	}
	if n := src.readCount(); n != 1 {
		t.Fatalf("membership read %d times within one refresh, want 1", n)
	}
	clk.t = clk.t.Add(time.Second)
	if c.get() != first || src.readCount() != 2 {
		t.Fatalf("an unchanged membership gave a new version, or was not read again (%d reads)", src.readCount())
	}
	src.set([]wire.BrokerInfo{brokerInfo("eu-1", 2), brokerInfo("eu-2", 1)})
	if c.get() != first {
		t.Fatal("a change was seen before the refresh interval passed")
	}
	clk.t = clk.t.Add(time.Second)
	next := c.get()
	if next.digest == first.digest || len(next.brokers) != 2 {
		t.Fatalf("after the refresh: %+v, want the two brokers under a new digest", next)
	}
}

// TestAckList: the first ack after a change carries the whole list, and
// only that one.
func TestAckList(t *testing.T) {
	src := &clusterList{}
	src.set([]wire.BrokerInfo{brokerInfo("eu-1", 1)})
	clk := &clock{t: t0}
	c := &brokerList{src: src, every: time.Second, now: clk.now}
	sent := c.get().digest // what the hello reply carried
	var ack wire.HeartbeatAck
	if c.ackList(&ack, &sent) || ack.Brokers != nil {
		t.Fatalf("an unchanged list was sent again: %+v", ack)
	}
	src.set([]wire.BrokerInfo{brokerInfo("eu-1", 1), brokerInfo("eu-3", 1)}, "12D3Kooeu-2")
	clk.t = clk.t.Add(time.Second)
	if !c.ackList(&ack, &sent) || len(ack.Brokers) != 2 || !slices.Equal(ack.Left, []string{"12D3Kooeu-2"}) {
		t.Fatalf("after a change the ack carries %+v, want eu-1, eu-3 and eu-2 left", ack)
	}
	ack = wire.HeartbeatAck{}
	if c.ackList(&ack, &sent) {
		t.Fatalf("the changed list was sent twice: %+v", ack)
	}
}

// TestBuildListBounds: a list is cut to what agents accept (wire's
// bounds) rather than refused by all of them; this broker, first, stays.
func TestBuildListBounds(t *testing.T) {
	var infos []wire.BrokerInfo
	for i := range wire.MaxBrokers + 6 {
		infos = append(infos, brokerInfo(fmt.Sprintf("b%02d", i), 1))
	}
	infos[0].Addrs = brokerInfo("b00", wire.MaxBrokerAddrs+4).Addrs
	infos[1].Addrs = []string{"/dns4/" + strings.Repeat("x", 300) + "/udp/1/quic-v1"}
	left := make([]string, wire.MaxBrokers+1)
	for i := range left {
		left[i] = fmt.Sprint("gone", i)
	}
	v := buildList(infos, left)
	if len(v.brokers) != wire.MaxBrokers || v.brokers[0].Name != "b00" || len(v.brokers[0].Addrs) != wire.MaxBrokerAddrs {
		t.Fatalf("%d brokers, first %s with %d addresses; want %d, b00 with %d",
			len(v.brokers), v.brokers[0].Name, len(v.brokers[0].Addrs), wire.MaxBrokers, wire.MaxBrokerAddrs)
	}
	if slices.ContainsFunc(v.brokers, func(b wire.BrokerInfo) bool { return b.Name == "b01" }) {
		t.Error("a broker with an over-long address was listed")
	}
	if len(v.left) != wire.MaxBrokers {
		t.Errorf("%d left, want %d", len(v.left), wire.MaxBrokers)
	}
	if len(infos[0].Addrs) != wire.MaxBrokerAddrs+4 {
		t.Error("buildList changed its input")
	}
	// What is built is what an agent accepts.
	ack := wire.HeartbeatAck{Seq: 1, Brokers: v.brokers, Left: v.left}
	raw, err := wire.Encode(&ack)
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.NewReader(strings.NewReader(string(raw))).Read(wire.MaxControl, &wire.HeartbeatAck{}); err != nil {
		t.Fatalf("an agent refuses the built list: %v", err)
	}
}

// nosignals takes heartbeat signals and drops them.
type nosignals struct{}

func (nosignals) Beat(string, *wire.Heartbeat) {}
func (nosignals) Gone(string)                  {}

func loopbackHost(t *testing.T, listen ...string) host.Host {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "host.key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key, Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestPresenceSendsChangedBrokerList runs a presence stream over loopback
// QUIC: the hello lists the one broker; after a second broker joins, the
// next ack lists both, and the acks after it list nothing.
func TestPresenceSendsChangedBrokerList(t *testing.T) {
	server, client := loopbackHost(t, "/ip4/127.0.0.1/udp/0/quic-v1"), loopbackHost(t)
	st := fleettest.Open(t)
	fleettest.Enrol(t, st, client.ID().String(), "acme", "pc-1", time.Now())
	src := &clusterList{}
	src.set([]wire.BrokerInfo{brokerInfo("eu-1", 1)})
	l := New(Config{Name: "eu-1", Heartbeat: time.Minute, BrokerListRefresh: time.Millisecond},
		Deps{Store: st, Signals: nosignals{}, Brokers: src})
	l.SetWork(work{})
	server.SetStreamHandler(wire.ProtoPresence, serve.Handle(serve.New(nil, nil), Spec, l.ServePresence))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := client.NewStream(ctx, server.ID(), wire.ProtoPresence)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	r := wire.NewReader(s)
	if err := wire.Write(s, &wire.Hello{MachineID: client.ID().String()}); err != nil {
		t.Fatal(err)
	}
	var hello wire.HelloReply
	if err := r.Read(wire.MaxControl, &hello); err != nil || hello.Error != nil || len(hello.Brokers) != 1 {
		t.Fatalf("hello reply %+v, %v; want one broker", hello, err)
	}
	beat := func(seq uint64) wire.HeartbeatAck {
		t.Helper()
		time.Sleep(2 * time.Millisecond) // past the refresh
		if err := wire.Write(s, &wire.Heartbeat{Seq: seq}); err != nil {
			t.Fatal(err)
		}
		var ack wire.HeartbeatAck
		if err := r.Read(wire.MaxControl, &ack); err != nil || ack.Seq != seq {
			t.Fatalf("ack %+v, %v; want seq %d", ack, err, seq)
		}
		return ack
	}
	if ack := beat(1); ack.Brokers != nil {
		t.Fatalf("an unchanged list sent again: %+v", ack)
	}
	src.set([]wire.BrokerInfo{brokerInfo("eu-1", 1), brokerInfo("eu-2", 1)})
	if ack := beat(2); len(ack.Brokers) != 2 || ack.Brokers[1].Name != "eu-2" {
		t.Fatalf("after eu-2 joined the ack lists %+v, want eu-1 and eu-2", ack.Brokers)
	}
	if ack := beat(3); ack.Brokers != nil {
		t.Fatalf("the new list sent twice: %+v", ack)
	}
	src.set([]wire.BrokerInfo{brokerInfo("eu-1", 1)}, "12D3Kooeu-2")
	if ack := beat(4); len(ack.Brokers) != 1 || !slices.Equal(ack.Left, []string{"12D3Kooeu-2"}) {
		t.Fatalf("after eu-2 left the ack lists %+v, left %v", ack.Brokers, ack.Left)
	}
}
