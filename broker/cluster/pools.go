package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// Pools is a broker's gossip as a whole: one Cluster, or two when brokers
// run in several regions.
//
// Why two: memberlist gives a node one timing and has every node probe
// every other, so a pool's failure detection must wait for the slowest
// round trip any of its members sees. A single pool spanning oceans has to
// run ProfileWAN everywhere, and then even the broker in the next rack
// takes tens of seconds to be declared dead. Splitting the gossip avoids
// that compromise: the brokers of a region form a pool of their own with
// LAN timing, and every broker also joins one pool of all brokers with WAN
// timing. A neighbour's death is noticed in seconds by the regional pool;
// a broker overseas is judged by the WAN pool, which does not mistake a
// slow ocean crossing for a failure.
//
// Pools writes to every pool (presence, notes, metadata, broadcasts) and
// merges what it reads back: Presence and Note take the newest claim,
// Members lists each broker once, as seen by the pool fit to judge it. A
// broker of this region shares both pools with this one, so its
// broadcasts, presence and note changes arrive once per pool, and
// handlers must tolerate duplicates.
type Pools struct {
	// Immutable after NewPools.
	lan    *Cluster // the region's pool, or the only one
	wan    *Cluster // every broker; nil with one pool
	region string   // this broker's region, to tell neighbours apart
}

// NewPools combines a broker's pools. lan is the pool of the broker's
// region, or its only pool; it must not be nil. wan is the pool of all
// brokers, or nil when the broker runs one pool. region is this broker's
// region: Members reports the brokers of that region as lan sees them.
// Both Clusters must carry this broker's node name. Pools takes them over:
// Start and Close start and close both.
func NewPools(lan, wan *Cluster, region string) *Pools {
	return &Pools{lan: lan, wan: wan, region: region}
}

// all returns the pools, the regional one first.
func (p *Pools) all() []*Cluster {
	if p.wan == nil {
		return []*Cluster{p.lan}
	}
	return []*Cluster{p.lan, p.wan}
}

// LocalName returns this broker's node name, which both pools share.
func (p *Pools) LocalName() string { return p.lan.LocalName() }

// LocalAddr returns the gossip address of the regional (or only) pool.
func (p *Pools) LocalAddr() string { return p.lan.LocalAddr() }

// WANAddr returns the gossip address of the pool of all brokers, or ""
// with one pool.
func (p *Pools) WANAddr() string {
	if p.wan == nil {
		return ""
	}
	return p.wan.LocalAddr()
}

// Start starts each pool in turn (see Cluster.Start), stopping at the
// first error; the caller then closes the Pools.
func (p *Pools) Start(ctx context.Context) error {
	for _, c := range p.all() {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close leaves and closes every pool, even when one fails, and returns
// their errors joined. It is safe to call more than once.
func (p *Pools) Close() error {
	var errs []error
	for _, c := range p.all() {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// UpdateMeta publishes m in every pool (see Cluster.UpdateMeta).
func (p *Pools) UpdateMeta(m Meta) error {
	var errs []error
	for _, c := range p.all() {
		errs = append(errs, c.UpdateMeta(m))
	}
	return errors.Join(errs...)
}

// SetOnline states in every pool that this broker holds machineID's
// bridge since the given time.
func (p *Pools) SetOnline(machineID string, since time.Time) {
	for _, c := range p.all() {
		c.SetOnline(machineID, since)
	}
}

// SetOffline states in every pool that this broker no longer holds
// machineID's bridge, as of at.
func (p *Pools) SetOffline(machineID string, at time.Time) {
	for _, c := range p.all() {
		c.SetOffline(machineID, at)
	}
}

// Presence returns where machineID is online across the pools: of the
// pools that know a live holder, the one whose claim is newest (the
// regional pool on a tie).
func (p *Pools) Presence(machineID string) (PresenceEntry, bool) {
	var answers []PresenceEntry
	for _, c := range p.all() {
		if e, ok := c.Presence(machineID); ok {
			answers = append(answers, e)
		}
	}
	return newestPresence(answers)
}

// SetNote records this broker's note about machineID in every pool (see
// Cluster.SetNote).
func (p *Pools) SetNote(machineID string, at time.Time, body []byte) {
	for _, c := range p.all() {
		c.SetNote(machineID, at, body)
	}
}

// Note returns the newest note about machineID across the pools, by the
// order Cluster.Note uses (the regional pool's on a tie).
func (p *Pools) Note(machineID string) (Note, bool) {
	var best Note
	found := false
	for _, c := range p.all() {
		n, ok := c.Note(machineID)
		if ok && (!found || newerNote(n, best)) {
			best, found = n, true
		}
	}
	return best, found
}

// newerNote reports whether a comes before b in the notes' order: the
// newer stamp, then the smaller broker name.
func newerNote(a, b Note) bool {
	if !a.At.Equal(b.At) {
		return a.At.After(b.At)
	}
	return a.Broker < b.Broker
}

// OnNote registers f with every pool. Each pool reports its own view, so
// a change can be heard once per pool; f should look up the merged answer
// with Note.
func (p *Pools) OnNote(f func(machineID string)) {
	for _, c := range p.all() {
		c.OnNote(f)
	}
}

// Broadcast sends topic and payload into every pool (see
// Cluster.Broadcast) and returns the pools' errors joined.
func (p *Pools) Broadcast(topic string, payload []byte) error {
	var errs []error
	for _, c := range p.all() {
		errs = append(errs, c.Broadcast(topic, payload))
	}
	return errors.Join(errs...)
}

// OnPresence registers f with every pool. Each pool reports its own view,
// so a change can be heard once per pool; f should look up the merged
// answer with Presence rather than trust one report.
func (p *Pools) OnPresence(f func(machineID string, e PresenceEntry)) {
	for _, c := range p.all() {
		c.OnPresence(f)
	}
}

// OnMessage registers f for topic with every pool. A broker in both pools
// is heard once per pool.
func (p *Pools) OnMessage(topic string, f func(from string, payload []byte)) {
	for _, c := range p.all() {
		c.OnMessage(topic, f)
	}
}

// Members lists every broker once, sorted by name. A broker of this
// region is reported as the regional pool sees it (LAN timing, the first
// to notice its failure); any other as the pool of all brokers sees it.
func (p *Pools) Members() []Member {
	if p.wan == nil {
		return p.lan.Members()
	}
	return mergeMembers(p.lan.Members(), p.wan.Members(), p.region)
}

// newestPresence picks among the answers of the pools that know where a
// machine is: the online answer with the newest Since, the earliest in the
// list on a tie; with no online answer, the first one. It reports false
// when there is no answer at all.
func newestPresence(answers []PresenceEntry) (PresenceEntry, bool) {
	var best PresenceEntry
	found := false
	for _, e := range answers {
		if !found || e.Online && (!best.Online || e.Since.After(best.Since)) {
			best, found = e, true
		}
	}
	return best, found
}

// mergeMembers joins the regional pool's member list with the pool of all
// brokers': a broker listed by both is taken from lan when it is of
// region, from wan otherwise; a broker listed by one is taken from it.
// The result is sorted by name; neither input is modified.
func mergeMembers(lan, wan []Member, region string) []Member {
	out := slices.Clone(lan)
	for _, m := range wan {
		i := slices.IndexFunc(out, func(x Member) bool { return x.Name == m.Name })
		switch {
		case i < 0:
			out = append(out, m)
		case m.Region != region:
			out[i] = m
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}
