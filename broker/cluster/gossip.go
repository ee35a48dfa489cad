package cluster

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"
)

// SetOnline records that this broker holds machineID's bridge since the
// given time, and gossips it. The cluster's view of the machine is the
// newest Since among alive brokers holding it (see Presence). machineID
// must be 1–256 bytes; others are logged and ignored.
func (c *Cluster) SetOnline(machineID string, since time.Time) {
	c.state(machineID, true, since)
}

// SetOffline records that this broker no longer holds machineID's bridge,
// as of at, and gossips it. It affects only this broker's statement: if
// the machine has meanwhile bridged to another broker, it stays online
// there. It does nothing if this broker does not hold the machine.
func (c *Cluster) SetOffline(machineID string, at time.Time) {
	c.state(machineID, false, at)
}

func (c *Cluster) state(machine string, online bool, at time.Time) {
	if len(machine) == 0 || len(machine) > maxMachineID {
		c.log.Warn("presence: machine ID of unexpected length ignored", "len", len(machine))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if !online {
		if e, ok := c.pres.origins[c.name].machines[machine]; !ok || !e.online {
			return
		}
	}
	c.seq++
	it := presItem{machine: machine, seq: c.seq, online: online, at: at.UnixMilli()}
	c.pres.apply(c.name, c.inc, it, c.now(), c.markDirtyLocked)
	msg := presEvent{origin: c.name, inc: c.inc, item: it}.encode()
	c.queue.QueueBroadcast(&namedBroadcast{name: c.name + "\x00" + machine, msg: msg})
	c.pushLocked(msg)
}

// Presence returns where machineID is online according to the whole
// cluster: among the alive or suspect brokers (this one included) that
// say they hold it, the one with the newest Since; on a tie, the smaller
// broker name. A machine is offline when no live broker holds it: its
// holder said so, failed, or left.
func (c *Cluster) Presence(machineID string) (PresenceEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pres.lookup(machineID, c.liveLocked)
}

// OnPresence registers f to hear of every change of a machine's
// cluster-wide presence: it comes online, moves to another broker, or
// goes offline (Online false, Broker the last holder). Registering reports
// every machine online now. Calls come from one goroutine, in order, with
// changes coalesced: a machine that flaps between two calls is reported
// once, as it is at the second. Nil unregisters.
func (c *Cluster) OnPresence(f func(machineID string, e PresenceEntry)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onPresence = f
	clear(c.reported)
	clear(c.dirty)
	for name := range c.pres.origins {
		c.pres.online(name, c.markDirtyLocked)
	}
}

// markDirtyLocked notes that machine's presence may have changed.
func (c *Cluster) markDirtyLocked(machine string) {
	if c.onPresence == nil {
		return
	}
	c.dirty[machine] = struct{}{}
	select {
	case c.wakeCh <- struct{}{}:
	default:
	}
}

// reportLoop calls onPresence for changed machines.
func (c *Cluster) reportLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wakeCh:
			c.report()
		}
	}
}

type change struct {
	machine string
	e       PresenceEntry
}

func (c *Cluster) report() {
	c.mu.Lock()
	f := c.onPresence
	var changes []change
	now := c.now()
	for m := range c.dirty {
		e, ok := c.pres.lookup(m, c.liveLocked)
		prev, had := c.reported[m]
		switch {
		case ok && (!had || prev.Broker != e.Broker || !prev.Since.Equal(e.Since)):
			c.reported[m] = e
			changes = append(changes, change{m, e})
		case !ok && had:
			at, closed := c.pres.closedAt(prev.Broker, m)
			if !closed {
				at = now // the holder failed or left
			}
			delete(c.reported, m)
			changes = append(changes, change{m, PresenceEntry{Broker: prev.Broker, Since: at}})
		}
	}
	clear(c.dirty)
	c.mu.Unlock()
	for _, ch := range changes {
		if f != nil {
			f(ch.machine, ch.e)
		}
	}
}

// receive handles a gossip message from memberlist. b is only valid
// during the call.
func (c *Cluster) receive(b []byte) {
	msg, err := decodeMessage(b)
	if err != nil {
		c.log.Debug("undecodable gossip message dropped", "err", err, "len", len(b))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch m := msg.(type) {
	case presEvent:
		if m.origin == c.name {
			c.ownIncarnationLocked(m.inc)
			return
		}
		if !validName(m.origin) || m.item.machine == "" {
			return
		}
		if c.pres.apply(m.origin, m.inc, m.item, c.now(), c.markDirtyLocked) {
			// News: pass it on, so it spreads epidemically rather than
			// only from its origin.
			msg := bytes.Clone(b)
			c.queue.QueueBroadcast(&namedBroadcast{name: m.origin + "\x00" + m.item.machine, msg: msg})
			c.pushLocked(msg)
		}
	case userMsg:
		c.receiveUserLocked(m, bytes.Clone(b))
	case noteItem:
		c.receiveNoteLocked(m, b)
	case notice:
		var news bool
		switch {
		case m.origin == c.name:
			c.ownIncarnationLocked(m.inc)
		case m.kind == kindLeave:
			news = c.receiveLeaveLocked(m)
		case m.kind == kindHello && validName(m.origin):
			news = c.receiveHelloLocked(m)
		}
		if news {
			msg := bytes.Clone(b)
			c.queue.QueueBroadcast(&namedBroadcast{name: noticeName(m.kind, m.origin), msg: msg})
			c.pushLocked(msg)
		}
	}
}

// noticeName is the queue name of a notice: a newer one from the same
// origin replaces an older one.
func noticeName(kind byte, origin string) string {
	return string([]byte{0, kind}) + origin
}

// receiveHelloLocked starts a new incarnation of origin's table; it
// reports whether that was news.
func (c *Cluster) receiveHelloLocked(m notice) bool {
	if o := c.pres.origins[m.origin]; o != nil && m.inc <= o.inc {
		return false
	}
	c.pres.table(m.origin, m.inc, c.markDirtyLocked)
	return true
}

// ownIncarnationLocked handles a statement about this broker's own
// presence coming back from the cluster. One from a newer incarnation
// than the current one was made by another process with this name:
// a previous run whose clock was ahead, or a duplicate. Moving past it
// makes the cluster accept this broker's statements again.
func (c *Cluster) ownIncarnationLocked(inc uint64) {
	if inc <= c.inc {
		return
	}
	c.log.Warn("presence statements with this broker's name and a newer incarnation seen (a duplicate name, or a clock set back since the last run); moving past them",
		"seen", inc, "had", c.inc)
	c.inc = inc + 1
	c.pres.origins[c.name].inc = c.inc
}

// localState encodes this broker's half of a push/pull exchange; join
// says it is a join's. It carries the notes (state version 2) only when
// every live member reads them, and then as many as fit maxState, the
// newest first.
func (c *Cluster) localState(join bool) []byte {
	var digest []byte
	if h := c.cfg.StateHook; h != nil {
		digest = h.LocalDigest()
		if len(digest) > maxDigest {
			c.log.Error("state digest not sent: over the limit", "len", len(digest), "limit", maxDigest)
			digest = nil
		}
	}
	c.mu.Lock()
	s := pushState{version: stateV1, sender: c.name, digest: digest, sections: c.pres.sections(c.name, c.seq)}
	cut := 0
	if len(c.notes.m) > 0 && c.notesUnderstoodLocked() {
		s.version = stateV2
		s.notes, cut = c.notes.items(maxState - s.sizeBound())
		if join {
			c.notesJoinAt = c.now()
		}
	}
	before := c.notesCut
	c.notesCut = cut
	c.mu.Unlock()
	switch {
	case cut > 0 && before == 0:
		c.log.Warn("push/pull carries only the newest machine notes: the rest is over the state limit; "+
			"a broker that (re)joins learns those only when they change", "sent", len(s.notes), "left_out", cut, "limit", maxState)
	case cut == 0 && before > 0:
		c.log.Info("push/pull carries every machine note again")
	}
	return s.encode()
}

// mergeState folds a peer's push/pull state into this broker's.
func (c *Cluster) mergeState(b []byte) {
	s, err := decodeState(b)
	if err == nil && c.cfg.testOnlyLegacy && s.version != stateV1 {
		err = fmt.Errorf("push/pull state version %d, want %d", s.version, stateV1)
	}
	if err != nil {
		c.log.Warn("undecodable push/pull state dropped", "err", err, "len", len(b))
		return
	}
	now := c.now()
	c.mu.Lock()
	for _, sec := range s.sections {
		switch {
		case sec.origin == c.name:
			c.ownIncarnationLocked(sec.inc)
		case validName(sec.origin):
			c.pres.merge(sec, now, c.markDirtyLocked)
		}
	}
	for _, n := range s.notes {
		c.ownNoteLocked(n)
		if n.valid() && c.notes.put(n, now, c.noteTTL) {
			c.markNoteLocked(n.machine)
		}
	}
	from := Member{Name: s.sender, State: StateAlive}
	if m := c.members[s.sender]; m != nil {
		from = *m
		from.Meta.Bridge = slices.Clone(m.Meta.Bridge)
	}
	c.mu.Unlock()
	if h := c.cfg.StateHook; h != nil && len(s.digest) > 0 {
		h.MergeDigest(from, bytes.Clone(s.digest))
	}
}
