package cluster

import (
	"bytes"
	"context"
	"time"
)

// Note is the cluster's newest statement about a machine: a small opaque
// body that one broker made and every broker keeps. The broker's
// reachability layer uses it to say why a machine is away (asleep, shut
// down, lost) on every broker, whichever broker the machine last talked
// to. Unlike presence, a note outlives the broker that made it: a machine
// that went to sleep stays "asleep" everywhere when that broker restarts.
type Note struct {
	Broker string    // the broker that made it
	At     time.Time // its stamp, with millisecond precision
	Body   []byte    // opaque, at most MaxNote bytes
}

// MaxNote is the largest note body SetNote accepts, in bytes. A note
// travels whole in one gossip packet with its machine ID and origin.
const MaxNote = 512

// DefaultNoteTTL is how long a note is kept after its stamp when
// Config.NoteTTL is zero.
const DefaultNoteTTL = 30 * 24 * time.Hour

// SetNote records this broker's note about machineID, stamped at, and
// gossips it: every broker's Note answers it within a gossip round or two
// (see BenchmarkNotePropagation), and brokers that join later learn it
// through push/pull. It becomes the machine's note unless the machine has
// a newer one by the order Note describes (this broker's own earlier note
// with the same stamp is replaced); a note that loses, or is stamped more
// than Config.NoteTTL ago, is not kept. machineID must be 1–256
// bytes and body at most MaxNote bytes; others are logged and ignored.
// body is copied.
func (c *Cluster) SetNote(machineID string, at time.Time, body []byte) {
	if len(machineID) == 0 || len(machineID) > maxMachineID {
		c.log.Warn("note: machine ID of unexpected length ignored", "len", len(machineID))
		return
	}
	if len(body) > MaxNote {
		c.log.Warn("note: body over the limit ignored", "machine", machineID, "len", len(body), "limit", MaxNote)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	now := c.now()
	c.noteVer = max(c.noteVer+1, uint64(max(now.UnixNano(), 0)))
	n := noteItem{origin: c.name, machine: machineID, at: at.UnixMilli(), ver: c.noteVer, body: body}
	if !c.notes.put(n, now, c.noteTTL) {
		c.log.Debug("note not kept: the machine has a newer one, or it is past the TTL", "machine", machineID, "at", at)
		return
	}
	c.markNoteLocked(machineID)
	c.spreadNoteLocked(machineID, n.encode())
}

// Note returns the newest note any broker made about machineID: the one
// with the newest stamp; on a tie, the one from the smaller broker name;
// from one broker, its latest. The broker that made it need not be live:
// a note outlives its broker. Notes past Config.NoteTTL are gone. Body is
// the caller's to keep.
func (c *Cluster) Note(machineID string) (Note, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.notes.get(machineID)
	if !ok || c.now().Sub(time.UnixMilli(n.at)) > c.noteTTL {
		return Note{}, false
	}
	return Note{Broker: n.origin, At: time.UnixMilli(n.at), Body: bytes.Clone(n.body)}, true
}

// OnNote registers f to hear of every change of a machine's newest note:
// a new one from any broker, or its expiry; f looks the note up with
// Note. Registering reports every machine that has a note now. Calls come
// from one goroutine, with changes coalesced: a machine whose note changes
// twice between two calls is reported once. Nil unregisters.
func (c *Cluster) OnNote(f func(machineID string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onNote = f
	clear(c.noteDirty)
	for m := range c.notes.m {
		c.markNoteLocked(m)
	}
}

// markNoteLocked notes that machine's note changed.
func (c *Cluster) markNoteLocked(machine string) {
	if c.onNote == nil {
		return
	}
	c.noteDirty[machine] = struct{}{}
	select {
	case c.noteCh <- struct{}{}:
	default:
	}
}

// noteLoop calls onNote for changed machines.
func (c *Cluster) noteLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.noteCh:
		}
		c.mu.Lock()
		f := c.onNote
		changed := make([]string, 0, len(c.noteDirty))
		for m := range c.noteDirty {
			changed = append(changed, m)
		}
		clear(c.noteDirty)
		c.mu.Unlock()
		for _, m := range changed {
			if f != nil {
				f(m)
			}
		}
	}
}

// spreadNoteLocked sends news about machine's note (msg, a kindNote
// message) as presence news goes: straight to a few peers and into the
// gossip queue, where it replaces older news about the same machine.
func (c *Cluster) spreadNoteLocked(machine string, msg []byte) {
	c.queue.QueueBroadcast(&namedBroadcast{name: string([]byte{0, kindNote}) + machine, msg: msg})
	c.pushLocked(msg)
}

// receiveNoteLocked handles a gossiped note; raw is the whole message,
// valid only during the call.
func (c *Cluster) receiveNoteLocked(n noteItem, raw []byte) {
	if c.cfg.testOnlyLegacy {
		return // as unknown to brokers before notes
	}
	c.ownNoteLocked(n)
	if n.valid() && c.notes.put(n, c.now(), c.noteTTL) {
		// News: pass it on, so it spreads epidemically.
		c.markNoteLocked(n.machine)
		c.spreadNoteLocked(n.machine, bytes.Clone(raw))
	}
}

// ownNoteLocked keeps this broker's note versions ahead of any it sees
// from its own name: a previous run's, whose clock may have been ahead.
func (c *Cluster) ownNoteLocked(n noteItem) {
	if n.origin == c.name && n.ver > c.noteVer {
		c.noteVer = n.ver
	}
}

// notesUnderstoodLocked reports whether push/pull may carry notes: every
// alive or suspect member other than this broker says in its metadata
// that it reads state version 2. A broker of an earlier release refuses
// a state of any version but 1 and would lose the whole exchange, its
// presence and digest with it.
func (c *Cluster) notesUnderstoodLocked() bool {
	if c.cfg.testOnlyLegacy {
		return false
	}
	for name, m := range c.members {
		if name != c.name && (m.State == StateAlive || m.State == StateSuspect) && !m.notes {
			return false
		}
	}
	return true
}
