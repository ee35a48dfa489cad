package broker

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/readymesh/readymesh/broker/cluster"
)

// pools is this broker's gossip: one pool of every broker, or two, the way
// brokers of several regions are meant to run. memberlist times failure
// detection for the slowest path a node probes, so a single pool across
// regions must run WAN timing everywhere. With two pools, the brokers of a
// region gossip among themselves with LAN timing (--gossip, --join) and
// every broker also joins one pool of all brokers with WAN timing
// (--wan-gossip, --wan-join): a broker of the same region is judged by the
// LAN pool, which notices its death in seconds, and a broker elsewhere by
// the WAN pool, which tolerates ocean-crossing round trips.
//
// Presence and replication notices go out on both pools; a broker that
// hears one twice (its region's brokers are in both) pulls once.
type pools struct {
	lan    *cluster.Cluster // the region's pool, or the only pool
	wan    *cluster.Cluster // every broker; nil with one pool
	region string
}

func (p *pools) all() []*cluster.Cluster {
	if p.wan == nil {
		return []*cluster.Cluster{p.lan}
	}
	return []*cluster.Cluster{p.lan, p.wan}
}

// LocalName is this broker's node name, the same in both pools.
func (p *pools) LocalName() string { return p.lan.LocalName() }

// LocalAddr is the gossip address of the region's pool.
func (p *pools) LocalAddr() string { return p.lan.LocalAddr() }

// WANAddr is the gossip address of the pool of all brokers, or "".
func (p *pools) WANAddr() string {
	if p.wan == nil {
		return ""
	}
	return p.wan.LocalAddr()
}

// Start starts every pool.
func (p *pools) Start(ctx context.Context) error {
	for _, c := range p.all() {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close leaves and closes every pool; it is idempotent.
func (p *pools) Close() error {
	var errs []error
	for _, c := range p.all() {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// UpdateMeta publishes this broker's metadata in every pool.
func (p *pools) UpdateMeta(m cluster.Meta) error {
	var errs []error
	for _, c := range p.all() {
		errs = append(errs, c.UpdateMeta(m))
	}
	return errors.Join(errs...)
}

// SetOnline and SetOffline announce in every pool.
func (p *pools) SetOnline(id string, since time.Time) {
	for _, c := range p.all() {
		c.SetOnline(id, since)
	}
}

func (p *pools) SetOffline(id string, at time.Time) {
	for _, c := range p.all() {
		c.SetOffline(id, at)
	}
}

// Presence is where a machine is online: the statement with the newest
// Since among the pools that say it is online.
func (p *pools) Presence(id string) (cluster.PresenceEntry, bool) {
	var best cluster.PresenceEntry
	found := false
	for _, c := range p.all() {
		e, ok := c.Presence(id)
		if !ok {
			continue
		}
		if !found || e.Online && (!best.Online || e.Since.After(best.Since)) {
			best, found = e, true
		}
	}
	return best, found
}

// Broadcast sends to every pool.
func (p *pools) Broadcast(topic string, payload []byte) error {
	var errs []error
	for _, c := range p.all() {
		errs = append(errs, c.Broadcast(topic, payload))
	}
	return errors.Join(errs...)
}

// OnPresence listens to presence changes in every pool.
func (p *pools) OnPresence(f func(machineID string, e cluster.PresenceEntry)) {
	for _, c := range p.all() {
		c.OnPresence(f)
	}
}

// OnMessage listens on every pool.
func (p *pools) OnMessage(topic string, f func(from string, payload []byte)) {
	for _, c := range p.all() {
		c.OnMessage(topic, f)
	}
}

// Members lists every broker once. A broker of this region is reported as
// the region's pool sees it (LAN timing), any other as the pool of all
// brokers sees it.
func (p *pools) Members() []cluster.Member {
	if p.wan == nil {
		return p.lan.Members()
	}
	out := p.lan.Members()
	for _, m := range p.wan.Members() {
		i := slices.IndexFunc(out, func(x cluster.Member) bool { return x.Name == m.Name })
		switch {
		case i < 0:
			out = append(out, m)
		case m.Region != p.region:
			out[i] = m
		}
	}
	slices.SortFunc(out, func(a, b cluster.Member) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}
