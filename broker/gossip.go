package broker

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/peer/wire"
)

// The broker's side of the cluster: it announces which machines it holds,
// reads where the others are, and lists the brokers for technicians and for
// agents to fail over to. Package cluster does the gossip.

// newCluster creates the gossip pools, or returns nil when the broker runs
// alone.
func (b *Broker) newCluster() (*pools, error) {
	if b.cfg.Gossip == "" {
		if len(b.cfg.Join) > 0 || b.cfg.WANGossip != "" {
			return nil, errors.New("broker: --join and --wan-gossip need --gossip")
		}
		return nil, nil
	}
	wanUsed := b.cfg.WANGossip != ""
	if len(b.cfg.GossipKeys) == 0 && (len(b.cfg.Join) > 0 || !loopback(b.cfg.Gossip) || wanUsed) {
		return nil, errors.New("broker: a gossip key is required to join a cluster or to gossip beyond loopback (--gossip-key-file)")
	}
	profile := cluster.Profile(b.cfg.GossipProfile)
	pl := &pools{region: b.cfg.Region}
	var err error
	pl.lan, err = cluster.New(b.poolConfig(b.cfg.Gossip, b.cfg.Join, profile, "cluster"))
	if err != nil || !wanUsed {
		return pl, err
	}
	wanProfile := cluster.Profile(b.cfg.WANProfile)
	if wanProfile == "" {
		wanProfile = cluster.ProfileWAN
	}
	if pl.wan, err = cluster.New(b.poolConfig(b.cfg.WANGossip, b.cfg.WANJoin, wanProfile, "wan")); err != nil {
		pl.lan.Close()
		return nil, err
	}
	return pl, nil
}

func (b *Broker) poolConfig(bind string, join []string, profile cluster.Profile, part string) cluster.Config {
	return cluster.Config{Name: b.cfg.Name, Region: b.cfg.Region, BindAddr: bind, Join: join,
		SecretKeys: b.cfg.GossipKeys, Profile: profile, Meta: b.meta(), StateHook: b.repl,
		Logger: b.log.With("part", part), Now: b.cfg.Now}
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// meta is what this broker gossips about itself.
func (b *Broker) meta() cluster.Meta {
	info := b.Info()
	// Plain transport addresses: the peer ID travels once, in PeerID, and
	// the 512-byte metadata budget goes to addresses.
	var bridge []string
	for _, a := range info.Addrs {
		addr, _, _ := strings.Cut(a, "/p2p/")
		bridge = append(bridge, addr)
	}
	return cluster.Meta{Name: b.cfg.Name, Region: b.cfg.Region, PeerID: info.PeerID, HTTP: info.HTTP,
		Bridge: bridge, Agents: b.live.count(), Technicians: b.techs.count()}
}

// publishMeta keeps the gossiped agent and technician counts current.
func (b *Broker) publishMeta(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var last cluster.Meta
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := b.meta()
		if m.Agents != last.Agents || m.Technicians != last.Technicians {
			if err := b.cluster.UpdateMeta(m); err != nil {
				b.log.Warn("cluster metadata", "err", err)
			}
			last = m
		}
	}
}

// announce tells the cluster this broker now holds (or dropped) a
// machine's bridge.
func (b *Broker) announce(id string, online bool, at time.Time) {
	if b.cluster == nil {
		return
	}
	if online {
		b.cluster.SetOnline(id, at)
	} else {
		b.cluster.SetOffline(id, at)
	}
}

// remoteReach is a machine's reachability through another broker, from the
// cluster's view. Live signals stay with the holding broker.
func (b *Broker) remoteReach(id string, stored *time.Time) (wire.Reachability, bool) {
	if b.cluster == nil {
		return wire.Reachability{}, false
	}
	e, ok := b.cluster.Presence(id)
	if !ok || !e.Online || e.Broker == b.cluster.LocalName() {
		return wire.Reachability{}, false
	}
	since := e.Since
	return wire.Reachability{Online: true, Since: &since, LastSeen: stored, Broker: e.Broker}, true
}

// clusterMembers lists the brokers of the cluster for meshctl brokers.
func (b *Broker) clusterMembers() []wire.BrokerMember {
	var out []wire.BrokerMember
	for _, m := range b.cluster.Members() {
		if m.Name == b.cluster.LocalName() {
			self := b.selfMember()
			self.GossipAddr = m.Addr
			out = append([]wire.BrokerMember{self}, out...)
			continue
		}
		out = append(out, wire.BrokerMember{Name: m.Meta.Name, Region: m.Region, State: m.State,
			PeerID: m.Meta.PeerID, HTTP: m.Meta.HTTP, GossipAddr: m.Addr, Bridge: m.Meta.Bridge,
			Agents: m.Meta.Agents, Technicians: m.Meta.Technicians})
	}
	return out
}

// brokerInfos lists the live brokers agents may fail over to, this one
// first.
func (b *Broker) brokerInfos() []wire.BrokerInfo {
	infos := []wire.BrokerInfo{b.Info()}
	if b.cluster == nil {
		return infos
	}
	for _, m := range b.cluster.Members() {
		if m.Name == b.cluster.LocalName() || m.State != cluster.StateAlive || m.Meta.PeerID == "" || len(m.Meta.Bridge) == 0 {
			continue
		}
		infos = append(infos, wire.BrokerInfo{PeerID: m.Meta.PeerID, Addrs: m.Meta.Bridge, HTTP: m.Meta.HTTP,
			Name: m.Meta.Name, Region: m.Region, Gossip: m.Addr})
	}
	return infos
}
