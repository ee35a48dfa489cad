package cluster

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestNewestPresence: of the pools' answers the newest online claim
// wins, the earlier answer on a tie, and an online answer beats an
// offline one whatever their times.
func TestNewestPresence(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	on := func(broker string, min int) PresenceEntry {
		return PresenceEntry{Online: true, Broker: broker, Since: t0.Add(time.Duration(min) * time.Minute)}
	}
	off := PresenceEntry{Broker: "gone", Since: t0.Add(time.Hour)}
	tests := []struct {
		name    string
		answers []PresenceEntry
		want    PresenceEntry
		found   bool
	}{
		{"no answer", nil, PresenceEntry{}, false},
		{"one pool", []PresenceEntry{on("a", 1)}, on("a", 1), true},
		{"wan newer", []PresenceEntry{on("a", 1), on("b", 2)}, on("b", 2), true},
		{"lan newer", []PresenceEntry{on("a", 3), on("b", 2)}, on("a", 3), true},
		{"tie keeps lan", []PresenceEntry{on("a", 1), on("b", 1)}, on("a", 1), true},
		{"online beats offline", []PresenceEntry{off, on("b", 1)}, on("b", 1), true},
		{"offline never replaces", []PresenceEntry{on("a", 1), off}, on("a", 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found := newestPresence(tt.answers)
			if got != tt.want || found != tt.found {
				t.Errorf("newestPresence = %+v, %v; want %+v, %v", got, found, tt.want, tt.found)
			}
		})
	}
}

// TestMergeMembers: a broker of this region is taken from the regional
// pool, any other from the pool of all brokers, each once, by name.
func TestMergeMembers(t *testing.T) {
	m := func(name, region, state string) Member { return Member{Name: name, Region: region, State: state} }
	tests := []struct {
		name     string
		lan, wan []Member
		want     []Member
	}{
		{"no wan members", []Member{m("b", "eu", StateAlive), m("a", "eu", StateAlive)}, nil,
			[]Member{m("a", "eu", StateAlive), m("b", "eu", StateAlive)}},
		{"neighbour judged by lan",
			[]Member{m("a", "eu", StateAlive), m("b", "eu", StateAlive)},
			[]Member{m("a", "eu", StateAlive), m("b", "eu", StateDead)},
			[]Member{m("a", "eu", StateAlive), m("b", "eu", StateAlive)}},
		{"other region judged by wan",
			[]Member{m("a", "eu", StateAlive), m("x", "us", StateAlive)},
			[]Member{m("a", "eu", StateAlive), m("x", "us", StateSuspect)},
			[]Member{m("a", "eu", StateAlive), m("x", "us", StateSuspect)}},
		{"wan only members added, sorted",
			[]Member{m("b", "eu", StateAlive)},
			[]Member{m("c", "us", StateAlive), m("a", "ap", StateLeft), m("b", "eu", StateAlive)},
			[]Member{m("a", "ap", StateLeft), m("b", "eu", StateAlive), m("c", "us", StateAlive)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lan := slices.Clone(tt.lan)
			got := mergeMembers(lan, tt.wan, "eu")
			if !slices.EqualFunc(got, tt.want, sameMember) {
				t.Errorf("mergeMembers = %+v, want %+v", got, tt.want)
			}
			if !slices.EqualFunc(lan, tt.lan, sameMember) {
				t.Errorf("mergeMembers changed its lan input: %+v", lan)
			}
		})
	}
}

func sameMember(a, b Member) bool {
	return a.Name == b.Name && a.Region == b.Region && a.State == b.State
}

// TestPools: a broker of region eu in a regional pool with its neighbour
// and a pool of all brokers with a broker of region us lists each broker
// once, its neighbour as the regional pool sees it, and answers where a
// machine is from whichever pool holds the newest claim.
func TestPools(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lanLab, wanLab := newMemLab(t, ProfileLAN), newMemLab(t, ProfileWAN)
		// The pools' metadata differ, so Members shows which pool it read.
		viaWAN := func(c *Config) { c.Meta.HTTP = "wan" }
		inUS := func(c *Config) { c.Region = "us" }

		lanA := lanLab.node("a", nil)
		lanB := lanLab.node("b", []string{lanA.LocalAddr()})
		wanA := wanLab.node("a", nil, viaWAN)
		wanB := wanLab.node("b", []string{wanA.LocalAddr()}, viaWAN)
		wanC := wanLab.node("c", []string{wanA.LocalAddr()}, viaWAN, inUS)
		a := NewPools(lanA, wanA, "eu")
		b := NewPools(lanB, wanB, "eu")
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if a.LocalName() != "a" || a.LocalAddr() != lanA.LocalAddr() || a.WANAddr() != wanA.LocalAddr() {
			t.Errorf("addresses: %s %s %s", a.LocalName(), a.LocalAddr(), a.WANAddr())
		}

		waitFor(t, 30*time.Second, "three brokers alive", func() bool {
			ms := a.Members()
			return len(ms) == 3 && countState(wanA, StateAlive) == 3 && countState(lanA, StateAlive) == 2
		})
		var names, via []string
		for _, m := range a.Members() {
			names, via = append(names, m.Name), append(via, m.Meta.HTTP)
		}
		if want := []string{"a", "b", "c"}; !slices.Equal(names, want) {
			t.Errorf("members %v, want %v", names, want)
		}
		if want := []string{"127.0.0.1:8080", "127.0.0.1:8080", "wan"}; !slices.Equal(via, want) {
			t.Errorf("members' metadata %v, want %v: a and b from the regional pool, c from the pool of all", via, want)
		}

		t1 := time.Now()
		b.SetOnline("m1", t1)
		waitFor(t, 30*time.Second, "m1 held by b", func() bool {
			e, ok := a.Presence("m1")
			return ok && e.Broker == "b" && e.Since.Equal(t1.Truncate(time.Millisecond))
		})
		time.Sleep(time.Second)
		t2 := time.Now()
		wanC.SetOnline("m1", t2) // the machine moved overseas: only the pool of all hears it
		waitFor(t, 30*time.Second, "m1 held by c", func() bool {
			e, ok := a.Presence("m1")
			return ok && e.Broker == "c" && e.Since.Equal(t2.Truncate(time.Millisecond))
		})
		if e, ok := lanA.Presence("m1"); !ok || e.Broker != "b" {
			t.Errorf("regional pool: %+v, %v; want b still", e, ok)
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}
