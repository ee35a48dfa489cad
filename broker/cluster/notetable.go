package cluster

import (
	"bytes"
	"encoding/binary"
	"slices"
	"time"
)

// notes is the cluster's note view as this broker knows it: for each
// machine, the newest note any broker made. It is a plain data structure
// guarded by the Cluster's mutex.
//
// Order. The newest stamp (At) wins, whoever made it; on a tie the
// smaller broker name, so every broker keeps the same note; on a tie of
// both, the origin's later statement (its higher version, see
// Cluster.noteVer). The order is total, so notes merge in any order and
// any number of times to the same view (a last-writer-wins register per
// machine), and gossip and push/pull need no tombstones. Since only the
// newest counts, the view keeps one note per machine, never more than one
// per machine and origin.
//
// Expiry. A note whose stamp is older than the TTL is dropped and not
// accepted again, so a machine not heard of for a month leaves no trace.
type notes struct {
	m map[string]noteItem // machine → newest note
}

// noteItem is one note, stored and on the wire: alone as a gossip message
// (kindNote) or inside a push/pull state.
type noteItem struct {
	origin  string // the broker that made it
	machine string
	at      int64  // Unix ms
	ver     uint64 // origin's version, orders its notes of equal stamps
	body    []byte
}

func newNotes() *notes { return &notes{m: map[string]noteItem{}} }

// newer reports whether a is newer than b in the notes' order.
func (a noteItem) newer(b noteItem) bool {
	switch {
	case a.at != b.at:
		return a.at > b.at
	case a.origin != b.origin:
		return a.origin < b.origin
	}
	return a.ver > b.ver
}

// put stores n, with a copy of its body, unless the machine's note is at
// least as new or n is older than ttl; it reports whether n was news.
func (ns *notes) put(n noteItem, now time.Time, ttl time.Duration) bool {
	if now.Sub(time.UnixMilli(n.at)) > ttl {
		return false
	}
	if cur, ok := ns.m[n.machine]; ok && !n.newer(cur) {
		return false
	}
	n.body = bytes.Clone(n.body)
	ns.m[n.machine] = n
	return true
}

// get returns machine's note.
func (ns *notes) get(machine string) (noteItem, bool) {
	n, ok := ns.m[machine]
	return n, ok
}

// expire drops notes older than ttl, reporting their machines to gone.
func (ns *notes) expire(now time.Time, ttl time.Duration, gone func(string)) {
	for m, n := range ns.m {
		if now.Sub(time.UnixMilli(n.at)) > ttl {
			delete(ns.m, m)
			gone(m)
		}
	}
}

// items returns the notes for a push/pull state, as many as fit budget
// bytes (by sizeBound), the newest first when not all do. cut is how many
// were left out. The items share their bodies with the view, which never
// modifies a body in place.
func (ns *notes) items(budget int) (out []noteItem, cut int) {
	out = make([]noteItem, 0, len(ns.m))
	size := 0
	for _, n := range ns.m {
		out = append(out, n)
		size += n.sizeBound()
	}
	if size <= budget {
		return out, 0
	}
	slices.SortFunc(out, func(a, b noteItem) int {
		if a.newer(b) {
			return -1
		}
		return 1
	})
	size = 0
	for i, n := range out {
		if size += n.sizeBound(); size > budget {
			return out[:i], len(out) - i
		}
	}
	return out, 0
}

// sizeBound is an upper bound of the note's encoded size in a state.
func (n noteItem) sizeBound() int {
	return len(n.origin) + len(n.machine) + len(n.body) + 5*binary.MaxVarintLen64
}

// appendNote lays out a note: origin, machine (length-prefixed), at
// (zig-zag varint), ver (uvarint), body (length-prefixed).
func appendNote(b []byte, n noteItem) []byte {
	b = appendString(b, n.origin)
	b = appendString(b, n.machine)
	b = appendVarint(b, n.at)
	b = appendUvarint(b, n.ver)
	return appendBytes(b, n.body)
}

// encode makes n a gossip message of its own.
func (n noteItem) encode() []byte { return appendNote([]byte{kindNote}, n) }

// note reads what appendNote wrote. The body aliases the reader's buffer.
func (r *reader) note() noteItem {
	var n noteItem
	n.origin = r.string(maxName)
	n.machine = r.string(maxMachineID)
	n.at = r.varint()
	n.ver = r.uvarint()
	n.body = r.bytes(MaxNote)
	return n
}

// minNote is the smallest encoded noteItem, for bounding counts.
const minNote = 5

// valid reports whether a received note may be stored: its origin is a
// broker name and its machine ID is not empty (the decoder bounds the
// rest).
func (n noteItem) valid() bool { return validName(n.origin) && n.machine != "" }
