package brokers_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/readymesh/readymesh/broker/brokers"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// selfInfo is how this broker describes itself: addresses ending in its
// peer ID, as a libp2p host lists them.
var selfInfo = wire.BrokerInfo{PeerID: "12D3KooSelf", HTTP: "127.0.0.1:8080", Name: "eu-1", Region: "eu",
	Addrs: []string{"/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooSelf", "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooSelf"}}

func info() wire.BrokerInfo { return selfInfo }

// alone is a list with no cluster, counting 3 agents and 2 technicians.
func alone() *brokers.List {
	l := brokers.New("eu-1", "eu", info, nil, nil)
	l.Count(func() int { return 3 }, func() int { return 2 })
	return l
}

func TestAloneMembers(t *testing.T) {
	ms := alone().Members()
	if len(ms) != 1 {
		t.Fatalf("members %+v, want only self", ms)
	}
	m := ms[0]
	if !m.Self || m.Name != "eu-1" || m.Region != "eu" || m.State != "alive" || m.PeerID != selfInfo.PeerID ||
		m.HTTP != selfInfo.HTTP || !slices.Equal(m.Bridge, selfInfo.Addrs) || m.Agents != 3 || m.Technicians != 2 {
		t.Errorf("self %+v", m)
	}
}

func TestAloneCountsZeroUntilConnected(t *testing.T) {
	l := brokers.New("eu-1", "eu", info, nil, nil)
	if m := l.Members()[0]; m.Agents != 0 || m.Technicians != 0 {
		t.Errorf("counts before Count: %d agents, %d technicians", m.Agents, m.Technicians)
	}
	if m := l.Meta(); m.Agents != 0 || m.Technicians != 0 {
		t.Errorf("meta counts before Count: %+v", m)
	}
}

func TestAloneInfos(t *testing.T) {
	infos := alone().Infos()
	if len(infos) != 1 || infos[0].PeerID != selfInfo.PeerID || !slices.Equal(infos[0].Addrs, selfInfo.Addrs) {
		t.Errorf("infos %+v, want self alone", infos)
	}
}

func TestAloneDescribe(t *testing.T) {
	l := alone()
	if info, ok := l.Describe("us-1"); ok {
		t.Errorf("Describe(us-1) = %+v, want nothing", info)
	}
	// Itself it can describe (a redirect never names it, but the list
	// is the same).
	if info, ok := l.Describe("eu-1"); !ok || info.PeerID != selfInfo.PeerID {
		t.Errorf("Describe(eu-1) = %+v, %v", info, ok)
	}
}

func TestMeta(t *testing.T) {
	m := alone().Meta()
	want := []string{"/ip4/127.0.0.1/udp/4001/quic-v1", "/ip4/127.0.0.1/tcp/4001"}
	if m.Name != "eu-1" || m.Region != "eu" || m.PeerID != selfInfo.PeerID || m.HTTP != selfInfo.HTTP ||
		!slices.Equal(m.Bridge, want) || m.Agents != 3 || m.Technicians != 2 {
		t.Errorf("meta %+v; want bridge %v without /p2p/ and counts 3, 2", m, want)
	}
}

// gossip is a cluster of fixed members that records metadata updates.
type gossip struct {
	members []cluster.Member
	local   string

	mu      sync.Mutex
	updates []cluster.Meta // mu guards
}

func (g *gossip) Members() []cluster.Member { return g.members }
func (g *gossip) LocalName() string         { return g.local }
func (g *gossip) UpdateMeta(m cluster.Meta) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.updates = append(g.updates, m)
	return nil
}

func (g *gossip) metas() []cluster.Meta {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.updates)
}

// threeBrokers: this one (node "b"), an alive peer ("a", sorted first by
// the cluster), a dead one, and an alive one that has not published its
// bridge yet.
func threeBrokers() *gossip {
	return &gossip{local: "b", members: []cluster.Member{
		{Name: "a", Region: "us", Addr: "10.0.0.1:7946", State: cluster.StateAlive,
			Meta: cluster.Meta{Name: "us-1", PeerID: "12D3KooA", HTTP: "10.0.0.1:8080", Bridge: []string{"/ip4/10.0.0.1/udp/4001/quic-v1"}, Agents: 7, Technicians: 1}},
		{Name: "b", Region: "eu", Addr: "10.0.0.2:7946", State: cluster.StateAlive, Meta: cluster.Meta{Name: "eu-1"}},
		{Name: "c", Region: "us", Addr: "10.0.0.3:7946", State: cluster.StateDead,
			Meta: cluster.Meta{Name: "us-2", PeerID: "12D3KooC", Bridge: []string{"/ip4/10.0.0.3/udp/4001/quic-v1"}}},
		{Name: "d", Region: "us", Addr: "10.0.0.4:7946", State: cluster.StateAlive, Meta: cluster.Meta{Name: "us-3", PeerID: "12D3KooD"}},
	}}
}

func TestClusterMembers(t *testing.T) {
	l := brokers.New("eu-1", "eu", info, threeBrokers(), nil)
	l.Count(func() int { return 3 }, func() int { return 2 })
	ms := l.Members()
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, []string{"eu-1", "us-1", "us-2", "us-3"}) {
		t.Fatalf("members %v, want self first", names)
	}
	if self := ms[0]; !self.Self || self.GossipAddr != "10.0.0.2:7946" || self.Agents != 3 {
		t.Errorf("self %+v", self)
	}
	if a := ms[1]; a.Self || a.Agents != 7 || a.Technicians != 1 || a.State != cluster.StateAlive || a.GossipAddr != "10.0.0.1:7946" {
		t.Errorf("us-1 %+v", a)
	}
}

func TestClusterInfos(t *testing.T) {
	infos := brokers.New("eu-1", "eu", info, threeBrokers(), nil).Infos()
	if len(infos) != 2 || infos[0].PeerID != selfInfo.PeerID || infos[1].PeerID != "12D3KooA" || infos[1].Gossip != "10.0.0.1:7946" {
		t.Errorf("infos %+v; want self, then the one alive broker with a bridge", infos)
	}
}

func TestClusterDescribe(t *testing.T) {
	l := brokers.New("eu-1", "eu", info, threeBrokers(), nil)
	if info, ok := l.Describe("us-1"); !ok || info.PeerID != "12D3KooA" || info.Region != "us" || info.HTTP != "10.0.0.1:8080" {
		t.Errorf("Describe(us-1) = %+v, %v", info, ok)
	}
	// A broker with no bridge addresses cannot be redirected to.
	if _, ok := l.Describe("us-3"); ok {
		t.Error("Describe(us-3) found a broker with no bridge")
	}
	if _, ok := l.Describe("nowhere"); ok {
		t.Error("Describe(nowhere) found something")
	}
}

// TestPublish: the counts are gossiped when they change, not at every
// tick, and Publish returns when its context ends. It runs on synctest's
// fake clock.
func TestPublish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := threeBrokers()
		l := brokers.New("eu-1", "eu", info, g, nil)
		var agents atomic.Int64
		agents.Store(4)
		l.Count(func() int { return int(agents.Load()) }, func() int { return 0 })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Publish(ctx)
		}()
		time.Sleep(10 * time.Second) // five ticks, one change
		synctest.Wait()
		if ms := g.metas(); len(ms) != 1 || ms[0].Agents != 4 || ms[0].PeerID != selfInfo.PeerID {
			t.Errorf("after five ticks published %+v, want one update with 4 agents", ms)
		}
		agents.Store(5)
		time.Sleep(2*time.Second + time.Millisecond)
		synctest.Wait()
		if ms := g.metas(); len(ms) != 2 || ms[1].Agents != 5 {
			t.Errorf("after a change published %+v, want a second update with 5 agents", ms)
		}
		cancel()
		<-done
	})
}

// fleetStore is a real store holding acme's three machines and globex's
// two.
func fleetStore(t *testing.T) *store.Store {
	st := fleettest.Open(t)
	for _, id := range []string{"acme-1", "acme-2", "acme-3", "globex-1", "globex-2"} {
		client, _, _ := strings.Cut(id, "-")
		fleettest.Enrol(t, st, id, client, id, time.Now())
	}
	return st
}

// bridges is the reachability overlay as a fixed map: machine ID → the
// node name of the broker holding its bridge.
type bridges map[string]string

func (b bridges) Reach(m *store.Machine) wire.Reachability {
	broker, ok := b[m.ID]
	return wire.Reachability{Online: ok, Broker: broker}
}

// TestMembersForTechnician: in a cluster, a technician scoped to acme sees
// every broker, but agent counts of acme's machines only, by the broker
// holding each bridge; an admin sees the gossiped totals.
func TestMembersForTechnician(t *testing.T) {
	st := fleetStore(t)
	// Node b is this broker (eu-1), node a is us-1, node c (us-2) is dead.
	reach := bridges{"acme-1": "b", "acme-2": "a", "globex-1": "b", "globex-2": "a"}
	l := brokers.New("eu-1", "eu", info, threeBrokers(), nil)
	l.Count(func() int { return 3 }, func() int { return 2 })
	type counts struct{ agents, technicians int }
	figures := func(t *wire.Technician) map[string]counts {
		out := map[string]counts{}
		for _, m := range l.MembersFor(t, st, reach) {
			out[m.Name] = counts{m.Agents, m.Technicians}
		}
		return out
	}
	tests := []struct {
		tech *wire.Technician
		want map[string]counts
	}{
		{&wire.Technician{Name: "admin", Admin: true}, map[string]counts{"eu-1": {3, 2}, "us-1": {7, 1}, "us-2": {}, "us-3": {}}},
		{&wire.Technician{Name: "alice", Clients: []string{"acme"}}, map[string]counts{"eu-1": {1, 2}, "us-1": {1, 1}, "us-2": {}, "us-3": {}}},
		{&wire.Technician{Name: "gus", Clients: []string{"globex", "acme"}}, map[string]counts{"eu-1": {2, 2}, "us-1": {2, 1}, "us-2": {}, "us-3": {}}},
		{&wire.Technician{Name: "nobody"}, map[string]counts{"eu-1": {0, 2}, "us-1": {0, 1}, "us-2": {}, "us-3": {}}},
	}
	for _, tt := range tests {
		if got := figures(tt.tech); !maps.Equal(got, tt.want) {
			t.Errorf("%s sees %v, want %v", tt.tech.Name, got, tt.want)
		}
	}
	if ms := l.MembersFor(tests[1].tech, st, reach); ms[0].Name != "eu-1" || !ms[0].Self || ms[1].PeerID != "12D3KooA" {
		t.Errorf("alice's list %+v; want the same brokers as Members, self first", ms)
	}
}

// TestMembersForTechnicianAlone: a broker alone counts the technician's
// clients' machines bridged to it.
func TestMembersForTechnicianAlone(t *testing.T) {
	st := fleetStore(t)
	reach := bridges{"acme-1": "eu-1", "acme-3": "eu-1", "globex-1": "eu-1", "globex-2": "eu-1"}
	ms := alone().MembersFor(&wire.Technician{Name: "alice", Clients: []string{"acme"}}, st, reach)
	if len(ms) != 1 || ms[0].Agents != 2 || ms[0].Technicians != 2 {
		t.Errorf("alice sees %+v, want eu-1 with acme's 2 agents", ms)
	}
}
