package cluster

import (
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member states, as Member.State reports them.
const (
	// StateAlive: the broker answers probes.
	StateAlive = "alive"
	// StateSuspect: this broker's last probe of it got no answer, directly
	// or through peers, and memberlist has not declared it dead yet. A
	// suspect broker's presence still counts.
	StateSuspect = "suspect"
	// StateDead: the cluster declared it failed. Its presence no longer
	// counts. It is remembered, and re-joined every reconnect interval,
	// for the profile's reconnect timeout (LAN 6 h, WAN 24 h), so a
	// partition heals by itself.
	StateDead = "dead"
	// StateLeft: it left gracefully (Close). Its presence is dropped. It
	// is remembered for memberlist's GossipToTheDeadTime (LAN 30 s).
	StateLeft = "left"
)

// Member is a broker of the cluster as this broker sees it.
type Member struct {
	Name   string // node name, unique in the cluster
	Region string // Meta.Region
	Addr   string // gossip address, "ip:port"
	State  string // StateAlive, StateSuspect, StateDead or StateLeft
	Meta   Meta
	// Since is when this broker saw State begin.
	Since time.Time
	// RTT is the round trip of this broker's latest answered probe of the
	// member; zero until one was answered (and always for itself).
	RTT time.Duration

	notes bool // its metadata says it reads machine notes (metaFlagNotes)
}

// Members lists the brokers this one knows, itself included, sorted by
// name: live ones and dead or left ones it still remembers.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		cp := *m
		cp.Meta.Bridge = slices.Clone(m.Meta.Bridge)
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// liveLocked reports whether origin's presence counts: it is this broker,
// or an alive or suspect member.
func (c *Cluster) liveLocked(origin string) bool {
	if origin == c.name {
		return true
	}
	m := c.members[origin]
	return m != nil && (m.State == StateAlive || m.State == StateSuspect)
}

// countLiveLocked refreshes the live member count the broadcast queue
// scales its retransmissions by.
func (c *Cluster) countLiveLocked() {
	n := 0
	for name := range c.members {
		if c.liveLocked(name) {
			n++
		}
	}
	c.alive.Store(int32(max(n, 1)))
}

// The memberlist event hooks below run with memberlist's node lock held:
// they take c.mu (a leaf lock) and must never call into memberlist.

// memberAlive handles a join (or rejoin) and a metadata update.
func (c *Cluster) memberAlive(n *memberlist.Node) {
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		c.log.Warn("broker metadata undecodable", "broker", n.Name, "err", err)
		meta = Meta{Name: n.Name}
	}
	notes := err == nil && metaNotes(n.Meta)
	now := c.now()
	c.mu.Lock()
	if n.Name == c.name {
		meta, notes = c.meta, !c.cfg.testOnlyLegacy
	}
	m := c.members[n.Name]
	was := ""
	if m == nil {
		m = &Member{Name: n.Name}
		c.members[n.Name] = m
	} else {
		was = m.State
	}
	// A join's push/pull is made before either side knows who the other
	// is, so this broker may have sent notes in one (state version 2) to
	// a broker that does not read them: it dropped that state whole,
	// presence and digest with it. If such a broker has just (re)appeared,
	// or just stopped reading notes, exchange with it again now that it is
	// known (in version 1).
	resync := n.Name != c.name && !notes && !c.cfg.testOnlyLegacy &&
		(m.notes || was != StateAlive && was != StateSuspect) &&
		!c.notesJoinAt.IsZero() && now.Sub(c.notesJoinAt) < c.mlConf.TCPTimeout
	m.Addr, m.Meta, m.Region, m.notes = n.Address(), meta, meta.Region, notes
	if m.State != StateAlive {
		m.State, m.Since = StateAlive, now
	}
	delete(c.leaving, n.Name)
	if was != StateAlive && was != StateSuspect {
		c.pres.online(n.Name, c.markDirtyLocked)
		c.countLiveLocked()
	}
	addr := m.Addr
	warnRegion := c.profile == ProfileLAN && meta.Region != "" && c.cfg.Region != "" &&
		meta.Region != c.cfg.Region && !c.regionWarned[meta.Region]
	if warnRegion {
		c.regionWarned[meta.Region] = true
	}
	c.mu.Unlock()

	if resync {
		select {
		case c.resync <- addr:
		default: // the periodic push/pull repairs it
		}
	}
	if n.Name == c.name {
		return
	}
	switch was {
	case "", StateLeft:
		c.log.Info("broker joined", "broker", n.Name, "addr", addr, "region", meta.Region)
	case StateDead:
		c.log.Info("broker is back", "broker", n.Name, "addr", addr)
	}
	if warnRegion {
		c.log.Warn("a broker of another region joined, but this broker runs the LAN gossip profile; "+
			"a multi-region cluster should run the wan profile on every broker",
			"broker", n.Name, "region", meta.Region, "local_region", c.cfg.Region)
	}
}

// memberGone handles a broker declared dead or leaving.
func (c *Cluster) memberGone(n *memberlist.Node) {
	if n.Name == c.name {
		return
	}
	now := c.now()
	c.mu.Lock()
	state := StateDead
	if c.leaving[n.Name] {
		state = StateLeft
	}
	m := c.members[n.Name]
	if m == nil {
		m = &Member{Name: n.Name, Addr: n.Address()}
		c.members[n.Name] = m
	}
	m.State, m.Since = state, now
	if state == StateLeft {
		c.pres.drop(n.Name, c.markDirtyLocked)
	} else {
		c.pres.online(n.Name, c.markDirtyLocked)
	}
	c.countLiveLocked()
	addr := m.Addr
	c.mu.Unlock()
	if state == StateLeft {
		c.log.Info("broker left", "broker", n.Name)
	} else {
		c.log.Warn("broker failed", "broker", n.Name, "addr", addr)
	}
}

// suspected marks name suspect after this broker's probe of it failed
// (memberlist logs it; it has no event for suspicion).
func (c *Cluster) suspected(name string) {
	c.mu.Lock()
	m := c.members[name]
	ok := m != nil && m.State == StateAlive
	if ok {
		m.State, m.Since = StateSuspect, c.now()
	}
	c.mu.Unlock()
	if ok {
		c.log.Info("broker suspected: probe unanswered", "broker", name)
	}
}

// probed records an answered probe of name.
func (c *Cluster) probed(name string, rtt time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.members[name]; m != nil {
		m.RTT = rtt
		if m.State == StateSuspect {
			m.State, m.Since = StateAlive, c.now()
		}
	}
}

// forgetLocked drops members that are gone for good: left ones after
// leftTTL, dead ones after the reconnect timeout. Their presence tables
// and duplicate windows go with them.
func (c *Cluster) forgetLocked(now time.Time, leftTTL time.Duration) {
	for name, m := range c.members {
		gone := m.State == StateLeft && now.Sub(m.Since) > leftTTL ||
			m.State == StateDead && now.Sub(m.Since) > c.timing.reconnectTimeout
		if gone {
			delete(c.members, name)
			delete(c.seen, name)
			delete(c.leaving, name)
			c.pres.drop(name, c.markDirtyLocked)
		}
	}
	// Tables of origins that are not members (gossip about a broker that
	// vanished before it was seen, or stale copies of a forgotten one)
	// expire after leftTTL.
	for name := range c.pres.origins {
		if _, ok := c.members[name]; ok || name == c.name {
			delete(c.strayed, name)
			continue
		}
		first, ok := c.strayed[name]
		switch {
		case !ok:
			c.strayed[name] = now
		case now.Sub(first) > leftTTL:
			c.pres.drop(name, c.markDirtyLocked)
			delete(c.strayed, name)
		}
	}
}

// receiveLeaveLocked records a broker's announced leave; it reports
// whether that was news. If memberlist already declared the broker dead
// (the announcement came late), it becomes left now.
func (c *Cluster) receiveLeaveLocked(m notice) bool {
	if c.leaving[m.origin] {
		return false
	}
	if o := c.pres.origins[m.origin]; o != nil && m.inc < o.inc {
		return false // from an earlier run of that broker
	}
	mem := c.members[m.origin]
	if mem == nil {
		return false
	}
	c.leaving[m.origin] = true
	if mem.State == StateDead {
		mem.State = StateLeft
		c.pres.drop(m.origin, c.markDirtyLocked)
	}
	return true
}
