package cluster

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func note(origin, machine string, at int64, ver uint64, body string) noteItem {
	return noteItem{origin: origin, machine: machine, at: at, ver: ver, body: []byte(body)}
}

// TestNoteOrder: the newest stamp wins whoever made it; on a tie the
// smaller broker name; from one broker on a tie, its later version. Any
// arrival order gives the same note.
func TestNoteOrder(t *testing.T) {
	now := time.UnixMilli(10_000)
	all := []noteItem{
		note("b", "m", 5000, 1, "b old"),
		note("b", "m", 9000, 2, "b newest"),
		note("a", "m", 9000, 1, "a tie, smaller name"),
		note("a", "m", 9000, 7, "a tie, later version"),
		note("c", "m", 8000, 9, "c older"),
	}
	want := "a tie, later version"
	for i := range 20 {
		ns := newNotes()
		order := slices.Clone(all)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, n := range order {
			ns.put(n, now, time.Hour)
		}
		// Again, as push/pull repeats what gossip carried.
		for _, n := range order {
			if ns.put(n, now, time.Hour) {
				t.Fatalf("run %d: a repeated note was news: %+v", i, n)
			}
		}
		got, ok := ns.get("m")
		if !ok || string(got.body) != want {
			t.Fatalf("run %d (order %v): got %q, want %q", i, order, got.body, want)
		}
	}
}

// TestNotePutNews: put reports news only for a newer note, keeps its own
// copy of the body, and refuses notes past the TTL.
func TestNotePutNews(t *testing.T) {
	now := time.UnixMilli(100_000)
	ns := newNotes()
	body := []byte("asleep")
	if !ns.put(noteItem{origin: "a", machine: "m", at: 90_000, ver: 1, body: body}, now, time.Minute) {
		t.Fatal("first note refused")
	}
	body[0] = 'X'
	if got, _ := ns.get("m"); string(got.body) != "asleep" {
		t.Errorf("stored body changed with the caller's: %q", got.body)
	}
	if ns.put(note("b", "m", 80_000, 9, "older"), now, time.Minute) {
		t.Error("older note was news")
	}
	if ns.put(note("a", "n", 100_000-61_000, 1, "past the TTL"), now, time.Minute) {
		t.Error("note past the TTL accepted")
	}
	if _, ok := ns.get("n"); ok {
		t.Error("note past the TTL stored")
	}
}

// TestNoteExpire: expiry drops notes whose stamp is past the TTL and
// reports their machines.
func TestNoteExpire(t *testing.T) {
	ns := newNotes()
	t0 := time.UnixMilli(1_000_000)
	ns.put(note("a", "old", 1_000_000, 1, ""), t0, time.Minute)
	ns.put(note("a", "new", 1_050_000, 1, ""), t0, time.Minute)
	var gone []string
	ns.expire(t0.Add(70*time.Second), time.Minute, func(m string) { gone = append(gone, m) })
	if !slices.Equal(gone, []string{"old"}) {
		t.Errorf("expired %v, want [old]", gone)
	}
	if _, ok := ns.get("new"); !ok {
		t.Error("unexpired note dropped")
	}
}

// TestNoteItemsBudget: over the budget, push/pull carries the newest
// notes that fit and says how many it left out.
func TestNoteItemsBudget(t *testing.T) {
	ns := newNotes()
	now := time.UnixMilli(1_000_000)
	for i := range 100 {
		ns.put(note("a", machineID(i), 900_000+int64(i), 1, strings.Repeat("x", 100)), now, time.Hour)
	}
	all, cut := ns.items(1 << 20)
	if len(all) != 100 || cut != 0 {
		t.Fatalf("within budget: %d items, %d cut", len(all), cut)
	}
	per := all[0].sizeBound()
	some, cut := ns.items(10*per + per/2)
	if len(some) != 10 || cut != 90 {
		t.Fatalf("budget of 10.5 notes: %d items, %d cut", len(some), cut)
	}
	for i, n := range some {
		if want := machineID(99 - i); n.machine != want {
			t.Errorf("item %d: %s, want the newest first (%s)", i, n.machine, want)
		}
	}
	if none, cut := ns.items(-5); len(none) != 0 || cut != 100 {
		t.Errorf("negative budget: %d items, %d cut", len(none), cut)
	}
}

// TestNoteSizeBound: sizeBound bounds the encoding, for notes and for a
// whole state, so the budget cannot be overrun.
func TestNoteSizeBound(t *testing.T) {
	n := noteItem{origin: strings.Repeat("o", maxName), machine: strings.Repeat("m", maxMachineID),
		at: -1 << 63, ver: 1<<64 - 1, body: bytes.Repeat([]byte{0xff}, MaxNote)}
	if enc := appendNote(nil, n); len(enc) > n.sizeBound() {
		t.Errorf("note: %d bytes, bound %d", len(enc), n.sizeBound())
	}
	s := pushState{version: stateV2, sender: "eu-1", digest: []byte("digest"),
		sections: []presSection{{origin: "eu-1", inc: 1<<64 - 1, floor: 1<<64 - 1, items: []presItem{item("m", 1<<64-1, true, -1<<63)}}},
		notes:    []noteItem{n, n}}
	if enc := s.encode(); len(enc) > s.sizeBound() {
		t.Errorf("state: %d bytes, bound %d", len(enc), s.sizeBound())
	}
}

// TestStateVersions: version 1 states (what earlier releases send) still
// decode, without notes; version 2 adds the notes after the presence
// view; other versions are refused. A state encoded as version 1 is
// exactly what an earlier release decodes: the version byte, then the
// fields it knows, and no trailing bytes.
func TestStateVersions(t *testing.T) {
	sections := []presSection{{origin: "eu-1", inc: 5, floor: 9, items: []presItem{item("m1", 3, true, 1000)}}}
	notes := []noteItem{note("eu-2", "m1", 2000, 3, "asleep"), note("eu-1", "m2", 3000, 4, "")}

	v1 := pushState{version: stateV1, sender: "eu-1", digest: []byte("d"), sections: sections, notes: notes}.encode()
	if v1[0] != 1 {
		t.Errorf("version 1 state starts with %d", v1[0])
	}
	if old := (pushState{sender: "eu-1", digest: []byte("d"), sections: sections}).encode(); !bytes.Equal(v1, old) {
		t.Error("a version 1 state carries notes")
	}
	s, err := decodeState(v1)
	if err != nil || s.version != stateV1 || s.notes != nil || !reflect.DeepEqual(s.sections, sections) {
		t.Fatalf("version 1: %+v, %v", s, err)
	}

	v2 := pushState{version: stateV2, sender: "eu-1", digest: []byte("d"), sections: sections, notes: notes}.encode()
	if v2[0] != 2 || !bytes.HasPrefix(v2[1:], v1[1:]) {
		t.Error("version 2 does not extend version 1")
	}
	s, err = decodeState(v2)
	if err != nil || s.version != stateV2 || !reflect.DeepEqual(s.notes, notes) || !reflect.DeepEqual(s.sections, sections) {
		t.Fatalf("version 2: %+v, %v", s, err)
	}

	for _, v := range []byte{0, 3, 255} {
		b := slices.Clone(v2)
		b[0] = v
		if _, err := decodeState(b); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("version %d", v)) {
			t.Errorf("version %d: %v", v, err)
		}
	}
	if _, err := decodeState(append(slices.Clone(v2), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

// TestNoteMessageBounds: a note message fits a gossip packet at its
// largest, and the decoder refuses bodies and machine IDs over the
// limits.
func TestNoteMessageBounds(t *testing.T) {
	big := noteItem{origin: strings.Repeat("o", maxName), machine: strings.Repeat("m", maxMachineID),
		at: -1 << 63, ver: 1<<64 - 1, body: bytes.Repeat([]byte{1}, MaxNote)}
	enc := big.encode()
	// memberlist's 1400-byte UDP budget, less encryption, label and
	// its compound-message header.
	if len(enc) > 1400-29-16-8 {
		t.Errorf("largest note message is %d bytes", len(enc))
	}
	if m, err := decodeMessage(enc); err != nil || !reflect.DeepEqual(m, big) {
		t.Errorf("largest note: %v", err)
	}
	over := big
	over.body = append(over.body, 1)
	if _, err := decodeMessage(over.encode()); err == nil {
		t.Error("body over MaxNote decoded")
	}
	over = big
	over.machine += "m"
	if _, err := decodeMessage(over.encode()); err == nil {
		t.Error("machine ID over the limit decoded")
	}
}
