package cluster

import "time"

// PresenceEntry says where a machine's bridge is open, in the cluster's
// view.
type PresenceEntry struct {
	// Online is true while some live broker holds the machine's bridge.
	Online bool
	// Broker is the node name of the holding broker. For an offline entry
	// (OnPresence only) it is the broker that held it last.
	Broker string
	// Since is when the holder's bridge opened. For an offline entry it is
	// when the machine went offline: the holder's SetOffline time, or when
	// this broker learned that the holder failed or left.
	Since time.Time
}

// presence is the cluster-wide presence view as this broker knows it: one
// table per origin broker, holding what that broker said about each
// machine it holds or held. It is a plain data structure guarded by the
// Cluster's mutex.
//
// Versions. Every statement carries its origin's incarnation (fixed per
// process start, see Cluster.inc) and a sequence number the origin
// increments per statement. A newer incarnation replaces the origin's whole
// table; within one, the higher sequence wins per machine, so a delayed or
// repeated event never overwrites a newer one.
//
// Deletions. An offline statement is kept as a tombstone so it can beat a
// delayed online. Tombstones cannot be kept forever, so each origin table
// also has a floor: this broker's entries for the origin are known to be
// at least as new as the origin's complete table at sequence floor.
// Anything with a sequence at or below the floor that is absent here is
// stale, so tombstones at or below it can go. The origin itself sends its
// complete table with floor = its current sequence in every push/pull,
// and other brokers pass on their floors, so floors rise everywhere with
// anti-entropy. Tombstones above the floor expire after a TTL as a bound.
type presence struct {
	origins map[string]*originTable
}

// originTable is one origin's statements.
type originTable struct {
	inc      uint64
	floor    uint64
	machines map[string]presEntry
}

// presEntry is an origin's latest statement about one machine.
type presEntry struct {
	online bool
	at     int64     // Unix ms: bridge opened (online) or closed (offline)
	seq    uint64    // origin's sequence number of the statement
	stored time.Time // local time stored, for tombstone expiry
}

// presItem is one statement on the wire, inside a presSection or a
// presEvent.
type presItem struct {
	machine string
	seq     uint64
	online  bool
	at      int64
}

// presSection is one origin's table in a push/pull message.
type presSection struct {
	origin     string
	inc, floor uint64
	items      []presItem
}

func newPresence() *presence { return &presence{origins: map[string]*originTable{}} }

// table returns origin's table for statements of incarnation inc, or nil
// if inc is older than the one known. A newer incarnation empties the
// table, reporting its online machines to dirty.
func (p *presence) table(origin string, inc uint64, dirty func(string)) *originTable {
	o := p.origins[origin]
	switch {
	case o == nil:
		o = &originTable{inc: inc, machines: map[string]presEntry{}}
		p.origins[origin] = o
	case inc < o.inc:
		return nil
	case inc > o.inc:
		for m, e := range o.machines {
			if e.online {
				dirty(m)
			}
		}
		*o = originTable{inc: inc, machines: map[string]presEntry{}}
	}
	return o
}

// apply records one statement from origin; it reports whether it was
// news (newer than what is known), in which case it should be passed on.
func (p *presence) apply(origin string, inc uint64, it presItem, now time.Time, dirty func(string)) bool {
	o := p.table(origin, inc, dirty)
	if o == nil {
		return false
	}
	return o.put(it, o.floor, now, dirty)
}

// put stores it unless a statement at least as new is known. floor is the
// table's floor before the current merge began.
func (o *originTable) put(it presItem, floor uint64, now time.Time, dirty func(string)) bool {
	cur, ok := o.machines[it.machine]
	if ok && it.seq <= cur.seq || !ok && it.seq <= floor {
		return false
	}
	o.machines[it.machine] = presEntry{online: it.online, at: it.at, seq: it.seq, stored: now}
	if it.online || ok && cur.online {
		dirty(it.machine)
	}
	return true
}

// merge folds a pushed table into the view. Entries at or below the
// section's floor that the section lacks are stale and removed.
func (p *presence) merge(s presSection, now time.Time, dirty func(string)) {
	o := p.table(s.origin, s.inc, dirty)
	if o == nil {
		return
	}
	floor := o.floor
	if s.floor > o.floor {
		in := make(map[string]bool, len(s.items))
		for _, it := range s.items {
			in[it.machine] = true
		}
		for m, e := range o.machines {
			if e.seq <= s.floor && !in[m] {
				delete(o.machines, m)
				if e.online {
					dirty(m)
				}
			}
		}
		o.floor = s.floor
	}
	for _, it := range s.items {
		o.put(it, floor, now, dirty)
	}
}

// sections returns the whole view for a push/pull message. self's table is
// complete by definition, so its floor is its current sequence seq and it
// needs no tombstones.
func (p *presence) sections(self string, seq uint64) []presSection {
	out := make([]presSection, 0, len(p.origins))
	for name, o := range p.origins {
		s := presSection{origin: name, inc: o.inc, floor: o.floor, items: make([]presItem, 0, len(o.machines))}
		if name == self {
			s.floor = seq
		}
		for m, e := range o.machines {
			if name == self && !e.online {
				continue
			}
			s.items = append(s.items, presItem{machine: m, seq: e.seq, online: e.online, at: e.at})
		}
		out = append(out, s)
	}
	return out
}

// expire drops tombstones that the floor covers or that are older than
// ttl.
func (p *presence) expire(now time.Time, ttl time.Duration) {
	for _, o := range p.origins {
		for m, e := range o.machines {
			if !e.online && (e.seq <= o.floor || now.Sub(e.stored) > ttl) {
				delete(o.machines, m)
			}
		}
	}
}

// drop forgets origin's table, reporting its online machines to dirty.
func (p *presence) drop(origin string, dirty func(string)) {
	p.online(origin, dirty)
	delete(p.origins, origin)
}

// online reports each machine origin holds to f.
func (p *presence) online(origin string, f func(string)) {
	if o := p.origins[origin]; o != nil {
		for m, e := range o.machines {
			if e.online {
				f(m)
			}
		}
	}
}

// lookup resolves machine across live origins. The rule for a machine
// that more than one broker says it holds (an agent that moved and whose
// old bridge has not timed out yet): the latest Since wins; on a tie, the
// smaller broker name, so every broker picks the same one.
func (p *presence) lookup(machine string, live func(string) bool) (PresenceEntry, bool) {
	var best PresenceEntry
	var bestAt int64
	for name, o := range p.origins {
		e, ok := o.machines[machine]
		if !ok || !e.online || !live(name) {
			continue
		}
		if !best.Online || e.at > bestAt || e.at == bestAt && name < best.Broker {
			best, bestAt = PresenceEntry{Online: true, Broker: name}, e.at
		}
	}
	if best.Online {
		best.Since = time.UnixMilli(bestAt)
	}
	return best, best.Online
}

// closedAt returns when origin said machine went offline, if it did.
func (p *presence) closedAt(origin, machine string) (time.Time, bool) {
	if o := p.origins[origin]; o != nil {
		if e, ok := o.machines[machine]; ok && !e.online {
			return time.UnixMilli(e.at), true
		}
	}
	return time.Time{}, false
}

// size returns the number of statements held, for tests and metrics.
func (p *presence) size() (n int) {
	for _, o := range p.origins {
		n += len(o.machines)
	}
	return n
}
