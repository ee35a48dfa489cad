package cluster

import (
	"slices"
	"testing"
	"time"
)

func noDirty(string) {}

func item(m string, seq uint64, online bool, at int64) presItem {
	return presItem{machine: m, seq: seq, online: online, at: at}
}

func has(p *presence, origin, m string) (presEntry, bool) {
	o := p.origins[origin]
	if o == nil {
		return presEntry{}, false
	}
	e, ok := o.machines[m]
	return e, ok
}

func alive(string) bool { return true }

// TestTableVersions: within an incarnation the higher sequence wins; a
// newer incarnation replaces the table, an older one is ignored.
func TestTableVersions(t *testing.T) {
	p := newPresence()
	now := time.Now()
	if !p.apply("a", 10, item("m", 2, false, 200), now, noDirty) {
		t.Fatal("first statement refused")
	}
	if p.apply("a", 10, item("m", 1, true, 100), now, noDirty) {
		t.Fatal("older statement applied over a newer offline")
	}
	if _, ok := p.lookup("m", alive); ok {
		t.Fatal("machine online")
	}
	p.apply("a", 10, item("n", 5, true, 100), now, noDirty)
	if p.apply("a", 9, item("m", 99, true, 100), now, noDirty) {
		t.Fatal("older incarnation applied")
	}
	var dirty []string
	if !p.apply("a", 11, item("m", 1, true, 300), now, func(m string) { dirty = append(dirty, m) }) {
		t.Fatal("newer incarnation refused")
	}
	if _, ok := has(p, "a", "n"); ok {
		t.Error("newer incarnation kept the old table")
	}
	slices.Sort(dirty)
	if !slices.Equal(dirty, []string{"m", "n"}) {
		t.Errorf("dirty %v", dirty)
	}
}

// TestTableFloor: a pushed table removes what it lacks at or below its
// floor, keeps newer statements, and later stale statements for removed
// machines are refused.
func TestTableFloor(t *testing.T) {
	p := newPresence()
	now := time.Now()
	p.apply("a", 1, item("gone", 3, true, 100), now, noDirty)  // deleted at a by seq 5
	p.apply("a", 1, item("kept", 4, true, 100), now, noDirty)  // still at a
	p.apply("a", 1, item("newer", 9, true, 100), now, noDirty) // after the push was taken
	p.merge(presSection{origin: "a", inc: 1, floor: 8, items: []presItem{item("kept", 4, true, 100), item("other", 6, true, 100)}}, now, noDirty)
	for m, want := range map[string]bool{"gone": false, "kept": true, "newer": true, "other": true} {
		if _, ok := has(p, "a", m); ok != want {
			t.Errorf("%s present=%v, want %v", m, ok, want)
		}
	}
	// A third party still gossiping the old "gone" statement is refused.
	if p.apply("a", 1, item("gone", 3, true, 100), now, noDirty) {
		t.Error("stale statement below the floor applied")
	}
	// Passed on with a lower floor, a third party's copy changes nothing
	// below it.
	p.merge(presSection{origin: "a", inc: 1, floor: 2, items: []presItem{item("gone", 3, true, 100)}}, now, noDirty)
	if _, ok := has(p, "a", "gone"); ok {
		t.Error("third party's stale copy revived a removed machine")
	}
}

// TestTableExpire: tombstones at or below the floor go at once, others
// after the TTL; online entries stay.
func TestTableExpire(t *testing.T) {
	p := newPresence()
	now := time.Now()
	p.merge(presSection{origin: "a", inc: 1, floor: 5}, now, noDirty)
	p.apply("a", 1, item("low", 4, false, 1), now, noDirty) // refused: at the floor, absent
	p.apply("a", 1, item("high", 7, false, 1), now, noDirty)
	p.apply("a", 1, item("on", 8, true, 1), now, noDirty)
	p.expire(now, time.Minute)
	if _, ok := has(p, "a", "high"); !ok {
		t.Error("tombstone above the floor expired early")
	}
	p.expire(now.Add(2*time.Minute), time.Minute)
	if _, ok := has(p, "a", "high"); ok {
		t.Error("tombstone outlived its TTL")
	}
	if _, ok := has(p, "a", "on"); !ok {
		t.Error("online entry expired")
	}
	if p.size() != 1 {
		t.Errorf("size %d", p.size())
	}
}

// TestTableLookup: the newest Since wins among live origins; a tie goes
// to the smaller name; a dead origin does not count.
func TestTableLookup(t *testing.T) {
	p := newPresence()
	now := time.Now()
	p.apply("b", 1, item("m", 1, true, 100), now, noDirty)
	p.apply("c", 1, item("m", 1, true, 200), now, noDirty)
	p.apply("a", 1, item("m", 1, true, 200), now, noDirty)
	if e, _ := p.lookup("m", alive); e.Broker != "a" || e.Since.UnixMilli() != 200 {
		t.Errorf("tie: %+v", e)
	}
	deadA := func(o string) bool { return o != "a" }
	if e, _ := p.lookup("m", deadA); e.Broker != "c" {
		t.Errorf("a dead: %+v", e)
	}
	if _, ok := p.lookup("m", func(string) bool { return false }); ok {
		t.Error("online with every origin dead")
	}
}

// TestTableSections: the own table goes out complete (floor = current
// sequence, no tombstones); others with their floors and tombstones.
func TestTableSections(t *testing.T) {
	p := newPresence()
	now := time.Now()
	p.apply("me", 1, item("x", 1, true, 1), now, noDirty)
	p.apply("me", 1, item("y", 2, false, 1), now, noDirty)
	p.merge(presSection{origin: "o", inc: 3, floor: 4, items: []presItem{item("z", 6, false, 1)}}, now, noDirty)
	for _, s := range p.sections("me", 2) {
		switch s.origin {
		case "me":
			if s.floor != 2 || len(s.items) != 1 || s.items[0].machine != "x" {
				t.Errorf("own section %+v", s)
			}
		case "o":
			if s.inc != 3 || s.floor != 4 || len(s.items) != 1 || s.items[0].online {
				t.Errorf("other section %+v", s)
			}
		}
	}
}
