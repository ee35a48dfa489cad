package cluster

import (
	"encoding/binary"
	"fmt"
)

// Gossip messages. Each starts with a kind byte; the formats are the
// package's own (see wire.go) and versioned by kind, so a new format gets
// a new kind and old brokers drop what they do not know.
const (
	kindPresence = 1 // presEvent
	kindUser     = 2 // userMsg
	kindLeave    = 3 // notice: the origin is leaving
	kindHello    = 4 // notice: the origin (re)started with a new incarnation
	kindNote     = 5 // noteItem: a machine note (see note.go)
)

const (
	// maxMachineID bounds machine IDs (libp2p peer IDs are about 52 bytes).
	maxMachineID = 256
	// maxTopic bounds broadcast topics.
	maxTopic = 64
	// MaxBroadcast is the largest topic plus payload Broadcast accepts, in
	// bytes. Gossip rides UDP packets of memberlist's 1400-byte budget,
	// shared with its own messages and the encryption overhead (29 bytes);
	// 1 KiB plus this package's header (at most about 150 bytes) leaves
	// room.
	MaxBroadcast = 1024
	// maxDigest bounds a StateHook digest in a push/pull message. memberlist
	// refuses remote state over 20 MiB.
	maxDigest = 8 << 20
	// maxState bounds this package's push/pull state once machine notes
	// are added, leaving room under memberlist's 20 MiB for its own node
	// records. Only notes are cut to fit it (see Cluster.localState): the
	// digest has its own bound, and presence is what is live (about
	// 6.5 MB for 100,000 machines).
	maxState = 16 << 20
)

// presEvent is one presence statement gossiped by or on behalf of origin.
type presEvent struct {
	origin string
	inc    uint64
	item   presItem
}

// userMsg is a Broadcast. inc and seq identify it for duplicate
// suppression, since every receiver passes it on.
type userMsg struct {
	origin   string
	inc, seq uint64
	topic    string
	payload  []byte
}

// notice is a broker's announcement about itself.
//
// kindLeave: it is about to leave gracefully. memberlist tells a leave
// from a failure internally, but its events do not say which (it never
// sets Node.State in them), so brokers announce the intent first.
//
// kindHello: it started, with a new presence incarnation. Peers drop
// what its previous run said at once, instead of when its new incarnation
// first reaches them: a broker restarted faster than failure detection
// notices would otherwise seem to hold its old machines for a while.
type notice struct {
	kind   byte
	origin string
	inc    uint64 // the origin's presence incarnation
}

func (m notice) encode() []byte {
	b := []byte{m.kind}
	b = appendString(b, m.origin)
	return appendUvarint(b, m.inc)
}

const flagOnline = 1 << 0

func appendItem(b []byte, it presItem) []byte {
	b = appendString(b, it.machine)
	b = appendUvarint(b, it.seq)
	var f byte
	if it.online {
		f |= flagOnline
	}
	b = append(b, f)
	return appendVarint(b, it.at)
}

func (r *reader) item() presItem {
	var it presItem
	it.machine = r.string(maxMachineID)
	it.seq = r.uvarint()
	it.online = r.byte()&flagOnline != 0
	it.at = r.varint()
	return it
}

// minItem is the smallest encoded presItem, for bounding counts.
const minItem = 4

func (e presEvent) encode() []byte {
	b := []byte{kindPresence}
	b = appendString(b, e.origin)
	b = appendUvarint(b, e.inc)
	return appendItem(b, e.item)
}

func (m userMsg) encode() []byte {
	b := []byte{kindUser}
	b = appendString(b, m.origin)
	b = appendUvarint(b, m.inc)
	b = appendUvarint(b, m.seq)
	b = appendString(b, m.topic)
	return appendBytes(b, m.payload)
}

// decodeMessage parses a gossip message into a presEvent, a userMsg, a
// notice or a noteItem. The payload of a userMsg and the body of a
// noteItem alias b.
func decodeMessage(b []byte) (any, error) {
	r := reader{b: b}
	kind := r.byte()
	var out any
	switch {
	case r.err != nil:
	case kind == kindPresence:
		var e presEvent
		e.origin = r.string(maxName)
		e.inc = r.uvarint()
		e.item = r.item()
		out = e
	case kind == kindUser:
		var m userMsg
		m.origin = r.string(maxName)
		m.inc = r.uvarint()
		m.seq = r.uvarint()
		m.topic = r.string(maxTopic)
		m.payload = r.bytes(MaxBroadcast)
		out = m
	case kind == kindLeave, kind == kindHello:
		m := notice{kind: kind}
		m.origin = r.string(maxName)
		m.inc = r.uvarint()
		out = m
	case kind == kindNote:
		out = r.note()
	default:
		return nil, fmt.Errorf("unknown message kind %d", kind)
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("message kind %d: %w", kind, err)
	}
	return out, nil
}

// pushState is the delegate's part of a push/pull exchange: the sender's
// name, the StateHook digest, the sender's whole presence view and, from
// version 2 on, every machine note it knows. The digest, the presence view
// and the notes are separate fields so none parses another.
type pushState struct {
	version  byte // stateV1 or stateV2; zero encodes as stateV1
	sender   string
	digest   []byte
	sections []presSection
	notes    []noteItem // version 2 only
}

// Push/pull state versions. Version 1 is what brokers before machine
// notes send and accept, whole and nothing more: their decoder refuses
// any other version and any trailing bytes. Version 2 appends the notes;
// a broker sends it only when every live member says in its metadata that
// it reads it (see metaFlagNotes, and memberAlive for a join's exchange,
// made before the broker knows its peer).
const (
	stateV1 = 1
	stateV2 = 2
)

// encode lays out: version, sender, digest (length-prefixed), section
// count, then per section origin, inc, floor, item count and items; in
// version 2, then a note count and the notes. A presence item costs its
// machine ID plus 9–16 bytes (a 52-byte peer ID: about 65), so 100,000
// machines make about 6.5 MB. A note costs its machine ID, origin and body
// plus 5–24 bytes (a 52-byte peer ID, a short broker name and a 100-byte
// body: about 180), and localState sends only as many as keep the whole
// under maxState, well inside memberlist's 20 MiB push/pull limit.
func (s pushState) encode() []byte {
	b := make([]byte, 0, s.sizeBound())
	b = append(b, max(s.version, stateV1))
	b = appendString(b, s.sender)
	b = appendBytes(b, s.digest)
	b = appendUvarint(b, uint64(len(s.sections)))
	for _, sec := range s.sections {
		b = appendString(b, sec.origin)
		b = appendUvarint(b, sec.inc)
		b = appendUvarint(b, sec.floor)
		b = appendUvarint(b, uint64(len(sec.items)))
		for _, it := range sec.items {
			b = appendItem(b, it)
		}
	}
	if s.version >= stateV2 {
		b = appendUvarint(b, uint64(len(s.notes)))
		for _, n := range s.notes {
			b = appendNote(b, n)
		}
	}
	return b
}

// sizeBound is an upper bound of len(s.encode()), notes included.
func (s pushState) sizeBound() int {
	n := 1 + 2*binary.MaxVarintLen64 + len(s.sender) + len(s.digest)
	for _, sec := range s.sections {
		n += len(sec.origin) + 4*binary.MaxVarintLen64
		for _, it := range sec.items {
			n += len(it.machine) + 1 + 3*binary.MaxVarintLen64
		}
	}
	n += binary.MaxVarintLen64
	for _, nt := range s.notes {
		n += nt.sizeBound()
	}
	return n
}

// decodeState parses a pushState of version 1 or 2. The digest and the
// notes' bodies alias b.
func decodeState(b []byte) (pushState, error) {
	r := reader{b: b}
	var s pushState
	s.version = r.byte()
	if r.err == nil && s.version != stateV1 && s.version != stateV2 {
		return pushState{}, fmt.Errorf("push/pull state version %d, want %d or %d", s.version, stateV1, stateV2)
	}
	s.sender = r.string(maxName)
	s.digest = r.bytes(maxDigest)
	n := r.count(4)
	s.sections = make([]presSection, n)
	for i := range s.sections {
		sec := &s.sections[i]
		sec.origin = r.string(maxName)
		sec.inc = r.uvarint()
		sec.floor = r.uvarint()
		sec.items = make([]presItem, r.count(minItem))
		for j := range sec.items {
			sec.items[j] = r.item()
		}
	}
	if s.version == stateV2 {
		s.notes = make([]noteItem, r.count(minNote))
		for i := range s.notes {
			s.notes[i] = r.note()
		}
	}
	if err := r.done(); err != nil {
		return pushState{}, fmt.Errorf("push/pull state: %w", err)
	}
	return s, nil
}
