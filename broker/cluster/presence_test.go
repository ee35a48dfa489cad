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

// ms truncates t to the millisecond precision presence carries.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()) }

// held reports whether c sees machine online at broker since since.
func held(c *Cluster, machine, broker string, since time.Time) bool {
	e, ok := c.Presence(machine)
	return ok && e.Online && e.Broker == broker && e.Since.Equal(ms(since))
}

func offline(c *Cluster, machine string) bool {
	_, ok := c.Presence(machine)
	return !ok
}

// everywhere reports whether cond holds on every cluster.
func everywhere(cs []*Cluster, cond func(*Cluster) bool) func() bool {
	return func() bool {
		for _, c := range cs {
			if !cond(c) {
				return false
			}
		}
		return true
	}
}

// TestPresenceSpreads: a machine online on one broker is seen there by
// all within a few gossip intervals, and so is its going offline.
func TestPresenceSpreads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3)
		since := time.Now()
		cs[0].SetOnline("m1", since)
		d := waitFor(t, 2*time.Second, "m1 online everywhere", everywhere(cs, func(c *Cluster) bool {
			return held(c, "m1", "b0", since)
		}))
		t.Logf("online spread in %v", d)
		cs[0].SetOffline("m1", time.Now())
		d = waitFor(t, 2*time.Second, "m1 offline everywhere", everywhere(cs, func(c *Cluster) bool {
			return offline(c, "m1")
		}))
		t.Logf("offline spread in %v", d)
		// SetOffline for a machine this broker does not hold changes nothing.
		cs[1].SetOnline("m2", since)
		cs[0].SetOffline("m2", time.Now())
		time.Sleep(2 * time.Second)
		for _, c := range cs {
			if !held(c, "m2", "b1", since) {
				t.Errorf("%s lost m2", c.LocalName())
			}
		}
	})
}

// TestPresenceStaleIgnored: an event older than the one known, replayed
// from the network, changes nothing.
func TestPresenceStaleIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(2)
		since := time.Now()
		cs[0].SetOnline("m1", since)
		waitFor(t, 2*time.Second, "m1 on b1", func() bool { return held(cs[1], "m1", "b0", since) })
		cs[0].mu.Lock()
		inc, seq := cs[0].inc, cs[0].seq
		cs[0].mu.Unlock()
		cs[0].SetOffline("m1", time.Now())
		waitFor(t, 2*time.Second, "m1 offline on b1", func() bool { return offline(cs[1], "m1") })

		// Replay the online event and an even older one from the same run.
		stale := presEvent{origin: "b0", inc: inc, item: presItem{machine: "m1", seq: seq, online: true, at: since.UnixMilli()}}
		cs[1].receive(stale.encode())
		stale.item.seq = seq - 1
		cs[1].receive(stale.encode())
		// And one from an earlier run of b0.
		stale = presEvent{origin: "b0", inc: inc - 1, item: presItem{machine: "m1", seq: seq + 100, online: true, at: since.UnixMilli()}}
		cs[1].receive(stale.encode())
		if !offline(cs[1], "m1") {
			t.Fatal("stale online event revived m1")
		}
		// A newer event is applied.
		fresh := presEvent{origin: "b0", inc: inc, item: presItem{machine: "m1", seq: seq + 2, online: true, at: since.UnixMilli()}}
		cs[1].receive(fresh.encode())
		if !held(cs[1], "m1", "b0", since) {
			t.Fatal("newer event ignored")
		}
	})
}

// TestPresenceMoved: an agent that reconnects to another broker before
// its old bridge timed out is online at the new broker (the newer Since
// wins), and the old broker's later offline does not clear it.
func TestPresenceMoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3)
		t0 := time.Now()
		cs[0].SetOnline("m1", t0)
		waitFor(t, 2*time.Second, "m1 at b0", everywhere(cs, func(c *Cluster) bool { return held(c, "m1", "b0", t0) }))
		time.Sleep(time.Second)
		t1 := time.Now()
		cs[1].SetOnline("m1", t1)
		waitFor(t, 2*time.Second, "m1 at b1", everywhere(cs, func(c *Cluster) bool { return held(c, "m1", "b1", t1) }))
		cs[0].SetOffline("m1", time.Now())
		time.Sleep(3 * time.Second)
		for _, c := range cs {
			if !held(c, "m1", "b1", t1) {
				e, ok := c.Presence("m1")
				t.Errorf("%s: m1 = %+v %v after the old holder's offline", c.LocalName(), e, ok)
			}
		}
		// A statement with an older Since loses even if it is made later:
		// the rule is newest Since, not newest message.
		cs[2].SetOnline("m1", t0)
		time.Sleep(3 * time.Second)
		for _, c := range cs {
			if !held(c, "m1", "b1", t1) {
				t.Errorf("%s: older Since won", c.LocalName())
			}
		}
	})
}

// TestPresenceHolderFails: when the broker holding machines is declared
// dead, they go offline everywhere, and OnPresence says so.
func TestPresenceHolderFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3)
		rec := newRecorder()
		cs[0].OnPresence(rec.record)
		since := time.Now()
		cs[2].SetOnline("m1", since)
		cs[2].SetOnline("m2", since)
		waitFor(t, 2*time.Second, "online", everywhere(cs[:2], func(c *Cluster) bool {
			return held(c, "m1", "b2", since) && held(c, "m2", "b2", since)
		}))
		kill(cs[2])
		waitFor(t, time.Minute, "m1, m2 offline", everywhere(cs[:2], func(c *Cluster) bool {
			return offline(c, "m1") && offline(c, "m2") && stateOf(c, "b2") == StateDead
		}))
		waitFor(t, time.Second, "callbacks", func() bool { return len(rec.get("m1")) == 2 && len(rec.get("m2")) == 2 })
		got := rec.get("m1")
		if !got[0].Online || got[0].Broker != "b2" || got[1].Online || got[1].Broker != "b2" || !got[1].Since.After(since) {
			t.Errorf("m1 callbacks: %+v", got)
		}
	})
}

// TestPresenceHolderLeaves: a broker that leaves takes its machines
// offline at once.
func TestPresenceHolderLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3)
		since := time.Now()
		cs[2].SetOnline("m1", since)
		waitFor(t, 2*time.Second, "online", everywhere(cs[:2], func(c *Cluster) bool { return held(c, "m1", "b2", since) }))
		cs[2].Close()
		waitFor(t, time.Second, "m1 offline", everywhere(cs[:2], func(c *Cluster) bool { return offline(c, "m1") }))
	})
}

// TestPresenceRestart: a broker that crashes and restarts at the same
// address before anyone notices does not seem to hold its old machines:
// its new incarnation wipes them everywhere at once.
func TestPresenceRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, ProfileLAN)
		cs := l.cluster(3)
		since := time.Now()
		cs[2].SetOnline("old", since)
		waitFor(t, 2*time.Second, "online", everywhere(cs, func(c *Cluster) bool { return held(c, "old", "b2", since) }))
		addr := cs[2].LocalAddr()
		kill(cs[2])
		time.Sleep(100 * time.Millisecond)
		port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
		again := l.node("b2", []string{cs[0].LocalAddr()}, func(c *Config) {
			c.Transport = newFaultTransport(l.mem.transportAt(port), l.faults)
		})
		<-again.Joined()
		d := waitFor(t, 2*time.Second, "old machine gone", everywhere(cs[:2], func(c *Cluster) bool {
			return offline(c, "old") && stateOf(c, "b2") == StateAlive
		}))
		t.Logf("old presence gone %v after the rejoin", d)
	})
}

// TestPresenceLateJoiner: a broker joining after the gossip has died down
// learns every broker's presence from the join's push/pull exchange alone.
func TestPresenceLateJoiner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, ProfileLAN)
		cs := l.cluster(3)
		since := time.Now()
		for i, c := range cs {
			for j := range 100 {
				c.SetOnline(fmt.Sprintf("m%d-%d", i, j), since)
			}
		}
		cs[1].SetOffline("m1-0", time.Now())
		waitFor(t, 10*time.Second, "gossip queues drained", everywhere(cs, func(c *Cluster) bool {
			return c.queue.NumQueued() == 0
		}))
		late := l.node("late", []string{cs[2].LocalAddr()})
		<-late.Joined()
		// No waiting: the join's exchange carried it. The next periodic
		// push/pull is 30 s away.
		for i := range cs {
			for j := range 100 {
				m := fmt.Sprintf("m%d-%d", i, j)
				_, ok := late.Presence(m)
				if want := !(i == 1 && j == 0); ok != want {
					t.Fatalf("late joiner: %s online=%v, want %v", m, ok, want)
				}
			}
		}
	})
}

// TestPresenceCallback: OnPresence hears a machine come online, move and
// go offline, in order, and registering reports what is online already.
func TestPresenceCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(2)
		t0 := time.Now()
		cs[0].SetOnline("early", t0)
		waitFor(t, 2*time.Second, "early on b1", func() bool { return held(cs[1], "early", "b0", t0) })
		rec := newRecorder()
		cs[1].OnPresence(rec.record)
		waitFor(t, time.Second, "early reported", func() bool { return len(rec.get("early")) == 1 })

		cs[0].SetOnline("m1", t0)
		waitFor(t, 2*time.Second, "m1 online", func() bool { return len(rec.get("m1")) == 1 })
		time.Sleep(time.Second)
		t1 := time.Now()
		cs[1].SetOnline("m1", t1)
		waitFor(t, 2*time.Second, "m1 moved", func() bool { return len(rec.get("m1")) == 2 })
		// The old holder's bridge times out: no change, b1 still holds it.
		// (Had b1 dropped it first, b0's older statement would count again
		// until b0 dropped it too: each broker answers only for itself.)
		cs[0].SetOffline("m1", t1)
		time.Sleep(2 * time.Second)
		cs[1].SetOffline("m1", t1.Add(time.Second))
		waitFor(t, 2*time.Second, "m1 offline", func() bool { return len(rec.get("m1")) == 3 })
		time.Sleep(2 * time.Second)
		got := rec.get("m1")
		if len(got) != 3 {
			t.Fatalf("callbacks: %+v", got)
		}
		want := []PresenceEntry{{true, "b0", ms(t0)}, {true, "b1", ms(t1)}, {false, "b1", ms(t1.Add(time.Second))}}
		for i := range want {
			if got[i].Online != want[i].Online || got[i].Broker != want[i].Broker || !got[i].Since.Equal(want[i].Since) {
				t.Errorf("callback %d: %+v, want %+v", i, got[i], want[i])
			}
		}
	})
}

// recorder collects OnPresence calls per machine.
type recorder struct {
	mu  sync.Mutex // guards all following fields
	got map[string][]PresenceEntry
}

func newRecorder() *recorder { return &recorder{got: map[string][]PresenceEntry{}} }

func (r *recorder) record(m string, e PresenceEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[m] = append(r.got[m], e)
}

func (r *recorder) get(m string) []PresenceEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]PresenceEntry(nil), r.got[m]...)
}
