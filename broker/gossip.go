package broker

import (
	"context"
	"errors"
	"time"

	"github.com/readymesh/readymesh/broker/brokers"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/replicate"
	"github.com/readymesh/readymesh/peer/bridge"
)

// The broker's side of the gossip: it makes the pools (one of every
// broker, or a region's pool and a pool of all brokers; see
// cluster.Pools) and starts them. What the broker says of itself there is
// package brokers'; reachability announces machines (package reach) and
// replication carries records (package replicate) on the same pools.

// joinCluster makes the gossip pools, or leaves b.cluster nil when the
// broker runs alone.
func (b *Broker) joinCluster() error {
	c := &b.cfg
	b.brokers = brokers.New(c.Name, c.Region, b.Info, nil, b.log) // until the pools exist
	if c.Gossip == "" {
		if len(c.Join) > 0 || c.WANGossip != "" {
			return errors.New("broker: --join and --wan-gossip need --gossip")
		}
		return nil
	}
	wanUsed := c.WANGossip != ""
	if len(c.GossipKeys) == 0 && (len(c.Join) > 0 || !loopback(c.Gossip) || wanUsed) {
		return errors.New("broker: a gossip key is required to join a cluster or to gossip beyond loopback (--gossip-key-file)")
	}
	lan, err := cluster.New(b.poolConfig(c.Gossip, c.Join, cluster.Profile(c.GossipProfile), "cluster"))
	if err != nil {
		return err
	}
	var wan *cluster.Cluster
	if wanUsed {
		profile := cluster.Profile(c.WANProfile)
		if profile == "" {
			profile = cluster.ProfileWAN
		}
		if wan, err = cluster.New(b.poolConfig(c.WANGossip, c.WANJoin, profile, "wan")); err != nil {
			lan.Close()
			return err
		}
	}
	b.cluster = cluster.NewPools(lan, wan, c.Region)
	b.repl.Join(b.cluster)
	b.brokers = brokers.New(c.Name, c.Region, b.Info, b.cluster, b.log)
	b.brokers.Versions(func(id string) string { return bridge.PeerVersion(b.host, id) })
	return nil
}

func (b *Broker) poolConfig(bind string, join []string, profile cluster.Profile, part string) cluster.Config {
	return cluster.Config{Name: b.cfg.Name, Region: b.cfg.Region, BindAddr: bind, Join: join,
		SecretKeys: b.cfg.GossipKeys, Profile: profile, Meta: b.brokers.Meta(), StateHook: b.repl,
		Logger: b.log.With("part", part), Now: b.cfg.Now}
}

// startCluster joins the pools and keeps this broker's metadata current
// until ctx ends.
func (b *Broker) startCluster(ctx context.Context, run func(func(context.Context))) error {
	b.cluster.OnMessage(replicate.NoticeTopic, b.repl.Notice)
	b.cluster.OnPresence(func(string, cluster.PresenceEntry) { b.changes.Notify() })
	b.cluster.OnNote(func(string) { b.changes.Notify() })
	if err := b.cluster.Start(ctx); err != nil {
		return err
	}
	run(b.brokers.Publish)
	return nil
}

// clusterNotes is the cluster's notes as the reachability layer keeps
// them (reach.NoteBook).
type clusterNotes struct{ pools *cluster.Pools }

func (n clusterNotes) SetNote(id string, at time.Time, body []byte) { n.pools.SetNote(id, at, body) }

func (n clusterNotes) Note(id string) (time.Time, []byte, bool) {
	note, ok := n.pools.Note(id)
	return note.At, note.Body, ok
}
