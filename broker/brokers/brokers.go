// Package brokers is the list of brokers that peers see, and what this
// broker tells the other brokers about itself.
//
// Peers see brokers three ways: meshctl brokers lists them with their
// agent and technician counts; every presence hello gives an agent the
// alive brokers it may fail over to, this one first; and a session request
// for a machine bridged elsewhere is redirected to the broker that holds
// it. All three come from the gossip's membership, each broker's gossiped
// metadata (its peer ID, bridge addresses and counts), which Publish keeps
// current.
//
// The agent counts meshctl brokers shows are figures about clients, so a
// technician who is not an admin sees only its own clients' share (see
// MembersFor). The gossiped counts are totals over every client, and a
// count per client would not fit the 512-byte metadata, so that share is
// counted from what every broker already has: the replicated store says
// which machines belong to the technician's clients, and the reachability
// overlay (presence gossip) says which broker holds each one's bridge.
package brokers

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// publishEvery is how often the gossiped counts are refreshed, when they
// changed.
const publishEvery = 2 * time.Second

// Cluster is the gossip, as the list needs it.
type Cluster interface {
	Members() []cluster.Member
	LocalName() string
	UpdateMeta(m cluster.Meta) error
}

// List is the broker list of one broker.
type List struct {
	name, region string
	info         func() wire.BrokerInfo
	cluster      Cluster // nil when the broker runs alone
	log          *slog.Logger
	// agents and technicians count the peers bridged here now; nil until
	// Count is called (they count 0).
	agents, technicians func() int
	// versionOf names another broker's version by peer ID; nil until
	// Versions is called.
	versionOf func(peerID string) string
}

// New returns the list of broker name in region. info describes this
// broker; c is nil when the broker runs alone.
func New(name, region string, info func() wire.BrokerInfo, c Cluster, log *slog.Logger) *List {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &List{name: name, region: region, info: info, cluster: c, log: log}
}

// Versions connects how the list learns another broker's version from its
// peer ID (the bridge host's identify record).
func (l *List) Versions(of func(peerID string) string) { l.versionOf = of }

// Count connects the counts of agents and technicians bridged here.
func (l *List) Count(agents, technicians func() int) { l.agents, l.technicians = agents, technicians }

func (l *List) counts() (agents, technicians int) {
	if l.agents == nil {
		return 0, 0
	}
	return l.agents(), l.technicians()
}

// self describes this broker for the list.
func (l *List) self() wire.BrokerMember {
	info := l.info()
	a, t := l.counts()
	return wire.BrokerMember{Name: l.name, Region: l.region, State: "alive", PeerID: info.PeerID,
		HTTP: info.HTTP, Bridge: info.Addrs, Agents: a, Technicians: t, Self: true,
		Version: bridge.AgentVersion(bridge.UserAgent())}
}

// Members lists the brokers of the cluster, this one first.
func (l *List) Members() []wire.BrokerMember { return l.members(nil) }

// members lists the brokers of the cluster, this one first. When agents
// is not nil, it gives each broker's agent count, by node name, in place
// of the gossiped one.
func (l *List) members(agents map[string]int) []wire.BrokerMember {
	if l.cluster == nil {
		self := l.self()
		if agents != nil {
			self.Agents = agents[l.name] // the node name of a broker alone
		}
		return []wire.BrokerMember{self}
	}
	var out []wire.BrokerMember
	for _, m := range l.cluster.Members() {
		if m.Name == l.cluster.LocalName() {
			self := l.self()
			self.GossipAddr = m.Addr
			if agents != nil {
				self.Agents = agents[m.Name]
			}
			out = append([]wire.BrokerMember{self}, out...)
			continue
		}
		b := wire.BrokerMember{Name: m.Meta.Name, Region: m.Region, State: m.State,
			PeerID: m.Meta.PeerID, HTTP: m.Meta.HTTP, GossipAddr: m.Addr, Bridge: m.Meta.Bridge,
			Agents: m.Meta.Agents, Technicians: m.Meta.Technicians}
		if l.versionOf != nil && b.PeerID != "" {
			b.Version = l.versionOf(b.PeerID)
		}
		if agents != nil {
			b.Agents = agents[m.Name]
		}
		out = append(out, b)
	}
	return out
}

// Machines is the replicated store, as MembersFor reads it.
type Machines interface {
	Machines() []store.Machine
}

// Reach is the reachability overlay: whether a machine's bridge is up
// now, and the name of the broker holding it.
type Reach interface {
	Reach(m *store.Machine) wire.Reachability
}

// MembersFor lists the brokers of the cluster, this one first, as
// technician t may see them. An admin sees Members. Any other technician
// sees the same brokers, but each one's agent count covers only the
// machines of t's clients whose bridge is up to that broker, counted over
// ms and reach (one pass over the stored machines). The technician counts
// stay: technicians are the MSP's own staff, not a client's.
func (l *List) MembersFor(t *wire.Technician, ms Machines, reach Reach) []wire.BrokerMember {
	if t.Admin {
		return l.Members()
	}
	return l.members(bridged(ms, reach, func(client string) bool { return scope.Visible(t, client) }))
}

// bridged counts the machines of the clients keep accepts that are online,
// by the node name of the broker holding their bridge, as the
// reachability overlay names it.
func bridged(ms Machines, reach Reach, keep func(client string) bool) map[string]int {
	n := map[string]int{}
	all := ms.Machines()
	for i := range all {
		m := &all[i]
		if !keep(m.Client) {
			continue
		}
		if r := reach.Reach(m); r.Online {
			n[r.Broker]++
		}
	}
	return n
}

// Infos lists the alive brokers agents may fail over to, this one first.
func (l *List) Infos() []wire.BrokerInfo {
	infos := []wire.BrokerInfo{l.info()}
	if l.cluster == nil {
		return infos
	}
	for _, m := range l.cluster.Members() {
		if m.Name == l.cluster.LocalName() || m.State != cluster.StateAlive || m.Meta.PeerID == "" || len(m.Meta.Bridge) == 0 {
			continue
		}
		infos = append(infos, wire.BrokerInfo{PeerID: m.Meta.PeerID, Addrs: m.Meta.Bridge, HTTP: m.Meta.HTTP,
			Name: m.Meta.Name, Region: m.Region, Gossip: m.Addr})
	}
	return infos
}

// Describe describes a broker of the cluster by name, for redirects.
func (l *List) Describe(name string) (wire.BrokerInfo, bool) {
	for _, m := range l.Members() {
		if m.Name == name && m.PeerID != "" && len(m.Bridge) > 0 {
			return wire.BrokerInfo{PeerID: m.PeerID, Addrs: m.Bridge, Name: m.Name, Region: m.Region, HTTP: m.HTTP}, true
		}
	}
	return wire.BrokerInfo{}, false
}

// Meta is what this broker gossips about itself.
func (l *List) Meta() cluster.Meta {
	info := l.info()
	// Plain transport addresses: the peer ID travels once, in PeerID, and
	// the 512-byte metadata budget goes to addresses.
	var bridge []string
	for _, a := range info.Addrs {
		addr, _, _ := strings.Cut(a, "/p2p/")
		bridge = append(bridge, addr)
	}
	a, t := l.counts()
	return cluster.Meta{Name: l.name, Region: l.region, PeerID: info.PeerID, HTTP: info.HTTP,
		Bridge: bridge, Agents: a, Technicians: t}
}

// Publish keeps the gossiped agent and technician counts current until
// ctx ends.
func (l *List) Publish(ctx context.Context) {
	if l.cluster == nil {
		return
	}
	t := time.NewTicker(publishEvery)
	defer t.Stop()
	var last cluster.Meta
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := l.Meta()
		if m.Agents != last.Agents || m.Technicians != last.Technicians {
			if err := l.cluster.UpdateMeta(m); err != nil {
				l.log.Warn("cluster metadata", "err", err)
			}
			last = m
		}
	}
}
