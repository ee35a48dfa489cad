package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// noted reports whether c's note about machine is body from broker at at.
func noted(c *Cluster, machine, broker string, at time.Time, body string) bool {
	n, ok := c.Note(machine)
	return ok && n.Broker == broker && n.At.Equal(ms(at)) && string(n.Body) == body
}

// noteRecorder counts OnNote calls per machine.
type noteRecorder struct {
	mu  sync.Mutex // guards got
	got map[string]int
}

func newNoteRecorder() *noteRecorder { return &noteRecorder{got: map[string]int{}} }

func (r *noteRecorder) record(m string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[m]++
}

func (r *noteRecorder) count(m string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[m]
}

// TestNoteSpreads: a note set on one of three brokers is seen on the
// others within a second, and their OnNote hears of it.
func TestNoteSpreads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3)
		recs := make([]*noteRecorder, len(cs))
		for i, c := range cs {
			recs[i] = newNoteRecorder()
			c.OnNote(recs[i].record)
		}
		at := time.Now()
		cs[1].SetNote("m1", at, []byte("asleep"))
		d := waitFor(t, time.Second, "m1's note everywhere", everywhere(cs, func(c *Cluster) bool {
			return noted(c, "m1", "b1", at, "asleep")
		}))
		t.Logf("note spread in %v", d)
		waitFor(t, time.Second, "OnNote everywhere", func() bool {
			return recs[0].count("m1") == 1 && recs[1].count("m1") == 1 && recs[2].count("m1") == 1
		})
		// A later note from another broker replaces it everywhere.
		time.Sleep(10 * time.Millisecond)
		at2 := time.Now()
		cs[2].SetNote("m1", at2, []byte("lost"))
		waitFor(t, time.Second, "the newer note everywhere", everywhere(cs, func(c *Cluster) bool {
			return noted(c, "m1", "b2", at2, "lost")
		}))
		waitFor(t, time.Second, "OnNote again", func() bool {
			return recs[0].count("m1") == 2 && recs[1].count("m1") == 2 && recs[2].count("m1") == 2
		})
		// Note hands out copies.
		n, _ := cs[0].Note("m1")
		n.Body[0] = 'X'
		if !noted(cs[0], "m1", "b2", at2, "lost") {
			t.Error("changing Note's body changed the note")
		}
		if _, ok := cs[0].Note("nobody"); ok {
			t.Error("a note for a machine nobody noted")
		}
	})
}

// TestNoteNewestWins: an older stamp loses even when set later; equal
// stamps go to the smaller broker name, whichever arrives last; one
// broker's later note with an equal stamp replaces its earlier one.
func TestNoteNewestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3)
		t0 := time.Now().Add(-time.Minute)
		t1 := time.Now()

		cs[0].SetNote("m1", t1, []byte("newer"))
		waitFor(t, time.Second, "newer", everywhere(cs, func(c *Cluster) bool { return noted(c, "m1", "b0", t1, "newer") }))
		cs[1].SetNote("m1", t0, []byte("older, set later"))
		time.Sleep(2 * time.Second)
		for _, c := range cs {
			if !noted(c, "m1", "b0", t1, "newer") {
				n, _ := c.Note("m1")
				t.Errorf("%s: older stamp won: %+v", c.LocalName(), n)
			}
		}

		// Ties: the larger name first, then the smaller; and the other way.
		cs[2].SetNote("tie1", t1, []byte("from b2"))
		waitFor(t, time.Second, "b2's", everywhere(cs, func(c *Cluster) bool { return noted(c, "tie1", "b2", t1, "from b2") }))
		cs[1].SetNote("tie1", t1, []byte("from b1"))
		waitFor(t, time.Second, "b1's wins", everywhere(cs, func(c *Cluster) bool { return noted(c, "tie1", "b1", t1, "from b1") }))

		cs[1].SetNote("tie2", t1, []byte("from b1"))
		waitFor(t, time.Second, "b1's", everywhere(cs, func(c *Cluster) bool { return noted(c, "tie2", "b1", t1, "from b1") }))
		cs[2].SetNote("tie2", t1, []byte("from b2"))
		time.Sleep(2 * time.Second)
		for _, c := range cs {
			if !noted(c, "tie2", "b1", t1, "from b1") {
				n, _ := c.Note("tie2")
				t.Errorf("%s: larger name won a tie: %+v", c.LocalName(), n)
			}
		}

		// The same broker and stamp: its later note replaces its earlier.
		cs[1].SetNote("tie2", t1, []byte("from b1, amended"))
		waitFor(t, time.Second, "amended", everywhere(cs, func(c *Cluster) bool {
			return noted(c, "tie2", "b1", t1, "from b1, amended")
		}))
	})
}

// TestNoteLateJoiner: a broker that joins after the gossip has died down
// learns every note from its join's push/pull alone.
func TestNoteLateJoiner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, ProfileLAN)
		cs := l.cluster(3)
		at := time.Now()
		for i, c := range cs {
			for j := range 100 {
				c.SetNote(fmt.Sprintf("m%d-%d", i, j), at, []byte(fmt.Sprintf("note %d-%d", i, j)))
			}
		}
		waitFor(t, 10*time.Second, "gossip queues drained", everywhere(cs, func(c *Cluster) bool {
			return c.queue.NumQueued() == 0
		}))
		late := l.node("late", []string{cs[2].LocalAddr()})
		rec := newNoteRecorder()
		<-late.Joined()
		// No waiting: the join's exchange carried them. The next periodic
		// push/pull is up to 30 s away.
		for i := range cs {
			for j := range 100 {
				m := fmt.Sprintf("m%d-%d", i, j)
				if !noted(late, m, fmt.Sprintf("b%d", i), at, fmt.Sprintf("note %d-%d", i, j)) {
					n, ok := late.Note(m)
					t.Fatalf("late joiner: %s: %+v %v", m, n, ok)
				}
			}
		}
		// Registering reports every note known.
		late.OnNote(rec.record)
		waitFor(t, time.Second, "every note reported", func() bool {
			return rec.count("m0-0") == 1 && rec.count("m2-99") == 1
		})
		if w := l.logs.grep("WARN"); len(w) > 0 {
			t.Errorf("warnings: %s", strings.Join(w, "\n"))
		}
	})
}

// TestNoteOutlivesBroker: a note stays on every broker when the broker
// that made it leaves, fails, or restarts, and the restarted broker learns
// it back and can replace it.
func TestNoteOutlivesBroker(t *testing.T) {
	for _, how := range []string{"leaves", "fails", "restarts"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testNoteOutlivesBroker(t, how) })
		})
	}
}

func testNoteOutlivesBroker(t *testing.T, how string) {
	l := newMemLab(t, ProfileLAN)
	cs := l.cluster(3)
	at := time.Now()
	cs[2].SetNote("m1", at, []byte("asleep"))
	cs[2].SetOnline("m2", at)
	waitFor(t, time.Second, "note everywhere", everywhere(cs, func(c *Cluster) bool {
		return noted(c, "m1", "b2", at, "asleep") && held(c, "m2", "b2", at)
	}))
	addr := cs[2].LocalAddr()
	switch how {
	case "leaves":
		cs[2].Close()
		waitFor(t, 5*time.Second, "b2 left", everywhere(cs[:2], func(c *Cluster) bool { return stateOf(c, "b2") == StateLeft }))
	case "fails", "restarts":
		kill(cs[2])
		waitFor(t, time.Minute, "b2 dead", everywhere(cs[:2], func(c *Cluster) bool { return stateOf(c, "b2") == StateDead }))
	}
	for _, c := range cs[:2] {
		if !offline(c, "m2") {
			t.Errorf("%s: b2's presence stayed", c.LocalName())
		}
		if !noted(c, "m1", "b2", at, "asleep") {
			t.Errorf("%s: b2's note gone when it %s", c.LocalName(), strings.TrimSuffix(how, "s"))
		}
	}
	if how != "restarts" {
		// Even after the cluster forgets the broker.
		time.Sleep(profileConfig(ProfileLAN).GossipToTheDeadTime + 5*time.Second)
		for _, c := range cs[:2] {
			if !noted(c, "m1", "b2", at, "asleep") {
				t.Errorf("%s: b2's note gone once b2 was forgotten", c.LocalName())
			}
		}
		return
	}
	port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	again := l.node("b2", []string{cs[0].LocalAddr()}, func(c *Config) {
		c.Transport = newFaultTransport(l.mem.transportAt(port), l.faults)
	})
	<-again.Joined()
	if !noted(again, "m1", "b2", at, "asleep") {
		n, ok := again.Note("m1")
		t.Fatalf("restarted b2 did not learn its note back: %+v %v", n, ok)
	}
	// Its new note with the same stamp replaces the old run's everywhere.
	again.SetNote("m1", at, []byte("shutdown"))
	all := []*Cluster{cs[0], cs[1], again}
	waitFor(t, time.Second, "replaced", everywhere(all, func(c *Cluster) bool { return noted(c, "m1", "b2", at, "shutdown") }))
}

// TestNoteTTL: notes expire on every broker once their stamp is past
// NoteTTL, OnNote hears of it, and a note already past it is not kept.
func TestNoteTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3, func(c *Config) { c.NoteTTL = 10 * time.Second })
		rec := newNoteRecorder()
		cs[0].OnNote(rec.record)
		at := time.Now()
		cs[1].SetNote("m1", at, []byte("asleep"))
		cs[1].SetNote("m2", at.Add(-11*time.Second), []byte("too old"))
		waitFor(t, time.Second, "m1 everywhere", everywhere(cs, func(c *Cluster) bool { return noted(c, "m1", "b1", at, "asleep") }))
		waitFor(t, time.Second, "m1 reported", func() bool { return rec.count("m1") == 1 })
		for _, c := range cs {
			if _, ok := c.Note("m2"); ok {
				t.Errorf("%s: a note past the TTL kept", c.LocalName())
			}
		}
		time.Sleep(8 * time.Second)
		if !noted(cs[0], "m1", "b1", at, "asleep") {
			t.Fatal("expired early")
		}
		time.Sleep(4 * time.Second)
		for _, c := range cs {
			if _, ok := c.Note("m1"); ok {
				t.Errorf("%s: m1 after its TTL", c.LocalName())
			}
			c.mu.Lock()
			n := len(c.notes.m)
			c.mu.Unlock()
			if n != 0 {
				t.Errorf("%s: %d notes held after the TTL", c.LocalName(), n)
			}
		}
		waitFor(t, time.Second, "expiry reported", func() bool { return rec.count("m1") == 2 })
		if rec.count("m2") != 0 {
			t.Error("OnNote reported a note never kept")
		}
	})
}

// TestNoteBadInput: a machine ID or body of the wrong length is logged and
// changes nothing; so is a negative NoteTTL.
func TestNoteBadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, ProfileLAN)
		c := l.node("a", nil)
		at := time.Now()
		c.SetNote("m", at, []byte("kept"))
		c.SetNote("", at.Add(time.Second), []byte("x"))
		c.SetNote(strings.Repeat("m", maxMachineID+1), at, []byte("x"))
		c.SetNote("m", at.Add(time.Second), make([]byte, MaxNote+1))
		if !noted(c, "m", "a", at, "kept") {
			t.Error("refused input changed the note")
		}
		c.mu.Lock()
		n := len(c.notes.m)
		c.mu.Unlock()
		if n != 1 {
			t.Errorf("%d notes held", n)
		}
		if got := len(l.logs.grep("a WARN note: machine ID of unexpected length ignored")); got != 2 {
			t.Errorf("%d machine ID warnings, want 2", got)
		}
		if got := len(l.logs.grep("a WARN note: body over the limit ignored")); got != 1 {
			t.Errorf("%d body warnings, want 1", got)
		}
		// A body of exactly MaxNote is fine.
		c.SetNote("m", at.Add(time.Second), make([]byte, MaxNote))
		if n, _ := c.Note("m"); len(n.Body) != MaxNote {
			t.Errorf("a body of MaxNote bytes: %d kept", len(n.Body))
		}
		if _, err := New(Config{Name: "x", NoteTTL: -time.Second, Transport: l.transport()}); err == nil {
			t.Error("negative NoteTTL accepted")
		}
	})
}

// TestNoteGateLegacy: with a member of an earlier release (its metadata
// without the notes flag) alive, push/pull states are version 1, which it
// reads; when it joins a cluster that has notes and answers its join with
// version 2, the cluster exchanges again with it at once, so it learns
// the presence it missed. Once it is gone, states carry notes again.
func TestNoteGateLegacy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, ProfileLAN)
		cs := l.cluster(2)
		at := time.Now()
		cs[0].SetNote("m1", at, []byte("asleep"))
		cs[1].SetOnline("m2", at)
		waitFor(t, time.Second, "note and presence everywhere", everywhere(cs, func(c *Cluster) bool {
			return noted(c, "m1", "b0", at, "asleep") && held(c, "m2", "b1", at)
		}))
		if v := stateVersion(t, cs[0]); v != stateV2 {
			t.Fatalf("all current: state version %d", v)
		}
		// So that only push/pull can tell the old broker where m2 is.
		waitFor(t, 10*time.Second, "gossip queues drained", everywhere(cs, func(c *Cluster) bool {
			return c.queue.NumQueued() == 0
		}))

		old := l.node("old", []string{cs[1].LocalAddr()}, func(c *Config) { c.testOnlyLegacy = true })
		<-old.Joined()
		waitFor(t, 5*time.Second, "old alive everywhere", func() bool { return allAlive(append(cs, old), 3) })
		// It dropped the join's answer (version 2: the responder did not
		// know who was joining), then got the repeat.
		waitFor(t, time.Second, "presence on the old broker", func() bool { return held(old, "m2", "b1", at) })
		if len(l.logs.grep("old WARN undecodable push/pull state dropped")) == 0 {
			t.Error("the old broker was not sent a version 2 state: this test does not test the repeat")
		}
		for _, c := range cs {
			if v := stateVersion(t, c); v != stateV1 {
				t.Errorf("%s: state version %d with an old member alive", c.LocalName(), v)
			}
		}
		if v := stateVersion(t, old); v != stateV1 {
			t.Errorf("old broker's state version %d", v)
		}
		// Notes still spread among current brokers; the old one drops them.
		at2 := time.Now()
		cs[1].SetNote("m3", at2, []byte("shutdown"))
		waitFor(t, time.Second, "m3 on b0", func() bool { return noted(cs[0], "m3", "b1", at2, "shutdown") })
		if _, ok := old.Note("m3"); ok {
			t.Error("the old broker kept a note")
		}
		warns := len(l.logs.grep("old WARN"))

		// Periodic push/pull with the old broker in the cluster: no more
		// refused states.
		time.Sleep(2 * profileConfig(ProfileLAN).PushPullInterval)
		if n := len(l.logs.grep("old WARN")); n != warns {
			t.Errorf("the old broker warned again: %s", strings.Join(l.logs.grep("old WARN"), "\n"))
		}

		old.Close()
		waitFor(t, 5*time.Second, "old left", everywhere(cs, func(c *Cluster) bool { return stateOf(c, "old") == StateLeft }))
		for _, c := range cs {
			if v := stateVersion(t, c); v != stateV2 {
				t.Errorf("%s: state version %d once the old member left", c.LocalName(), v)
			}
		}
	})
}

// stateVersion returns the version of c's push/pull state now.
func stateVersion(t *testing.T, c *Cluster) byte {
	t.Helper()
	s, err := decodeState(c.localState(false))
	if err != nil {
		t.Fatalf("%s: own state: %v", c.LocalName(), err)
	}
	return s.version
}

// TestNoteMetaFlag: metadata carries the notes flag, and a decoder that
// knows only the truncation flag (an earlier release's) reads it as
// before.
func TestNoteMetaFlag(t *testing.T) {
	m := Meta{Name: "eu-1", Region: "eu", Bridge: []string{"/ip4/10.0.0.1/udp/7400/quic-v1"}}
	b, _, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	if !metaNotes(b) {
		t.Error("flag not set")
	}
	got, err := decodeMeta(b)
	if err != nil || got.BridgeTruncated || got.Name != "eu-1" {
		t.Errorf("decoded %+v, %v", got, err)
	}
	b[1] &^= metaFlagNotes
	if metaNotes(b) || metaNotes(nil) || metaNotes([]byte{2, metaFlagNotes}) {
		t.Error("flag read where it is not")
	}
}

// TestPoolsNote: Pools sets a note in every pool and answers the newest
// across them.
func TestPoolsNote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lanLab, wanLab := newMemLab(t, ProfileLAN), newMemLab(t, ProfileWAN)
		lanA := lanLab.node("a", nil)
		lanB := lanLab.node("b", []string{lanA.LocalAddr()})
		wanA := wanLab.node("a", nil)
		wanB := wanLab.node("b", []string{wanA.LocalAddr()})
		wanC := wanLab.node("c", []string{wanA.LocalAddr()}, func(c *Config) { c.Region = "us" })
		a, b := NewPools(lanA, wanA, "eu"), NewPools(lanB, wanB, "eu")
		waitFor(t, 30*time.Second, "pools formed", func() bool {
			return countState(lanA, StateAlive) == 2 && countState(wanA, StateAlive) == 3
		})
		rec := newNoteRecorder()
		a.OnNote(rec.record)

		t1 := time.Now()
		b.SetNote("m1", t1, []byte("asleep"))
		waitFor(t, 10*time.Second, "b's note in both of a's pools", func() bool {
			return noted(lanA, "m1", "b", t1, "asleep") && noted(wanA, "m1", "b", t1, "asleep")
		})
		if n, ok := a.Note("m1"); !ok || n.Broker != "b" || string(n.Body) != "asleep" {
			t.Errorf("a.Note = %+v, %v", n, ok)
		}
		time.Sleep(time.Second)
		t2 := time.Now()
		wanC.SetNote("m1", t2, []byte("lost")) // only the pool of all hears it
		waitFor(t, 30*time.Second, "c's note", func() bool {
			n, ok := a.Note("m1")
			return ok && n.Broker == "c" && string(n.Body) == "lost"
		})
		if !noted(lanA, "m1", "b", t1, "asleep") {
			t.Error("the regional pool lost b's note")
		}
		if rec.count("m1") < 3 { // b's note once per pool, then c's
			t.Errorf("OnNote heard m1 %d times", rec.count("m1"))
		}
		if _, ok := a.Note("none"); ok {
			t.Error("a note for a machine nobody noted")
		}
	})
}

// TestNewerNote: the pools' order matches the cluster's.
func TestNewerNote(t *testing.T) {
	t0 := time.UnixMilli(1000)
	tests := []struct {
		a, b Note
		want bool
	}{
		{Note{Broker: "z", At: t0.Add(time.Millisecond)}, Note{Broker: "a", At: t0}, true},
		{Note{Broker: "a", At: t0}, Note{Broker: "z", At: t0.Add(time.Millisecond)}, false},
		{Note{Broker: "a", At: t0}, Note{Broker: "b", At: t0}, true},
		{Note{Broker: "b", At: t0}, Note{Broker: "a", At: t0}, false},
		{Note{Broker: "a", At: t0}, Note{Broker: "a", At: t0}, false},
	}
	for i, tt := range tests {
		if got := newerNote(tt.a, tt.b); got != tt.want {
			t.Errorf("%d: newerNote(%+v, %+v) = %v", i, tt.a, tt.b, got)
		}
	}
}
