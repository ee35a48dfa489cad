package cluster

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestJoinThree: three brokers join; each lists all three alive with the
// others' metadata and addresses.
func TestJoinThree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3)
		for _, c := range cs {
			ms := c.Members()
			if len(ms) != 3 {
				t.Fatalf("%s: %d members", c.LocalName(), len(ms))
			}
			for i, m := range ms {
				want := cs[i]
				if m.Name != want.LocalName() || m.State != StateAlive || m.Addr != want.LocalAddr() ||
					m.Region != "eu" || m.Meta.PeerID != "peer-"+m.Name || m.Meta.Name != m.Name ||
					len(m.Meta.Bridge) != 1 || m.Meta.BridgeTruncated {
					t.Errorf("%s sees %+v", c.LocalName(), m)
				}
			}
		}
	})
}

// TestStartInAnyOrder: a broker whose join target is not up yet keeps
// retrying and joins once it is.
func TestStartInAnyOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, ProfileLAN)
		// The memNet hands out ports in order: the next node gets 7002.
		early := l.node("early", []string{"127.0.0.1:7002"})
		time.Sleep(5 * time.Second)
		select {
		case <-early.Joined():
			t.Fatal("joined a broker that does not exist yet")
		default:
		}
		late := l.node("late", nil)
		if late.LocalAddr() != "127.0.0.1:7002" {
			t.Fatalf("late broker at %s", late.LocalAddr())
		}
		waitFor(t, 20*time.Second, "early joins late", func() bool {
			return countState(early, StateAlive) == 2 && countState(late, StateAlive) == 2
		})
		<-early.Joined()
		if len(l.logs.grep("join failed, retrying")) == 0 {
			t.Error("no join retry logged")
		}
	})
}

// TestLeaveIsLeft: a broker that closes is "left" for the others at once,
// and Close is idempotent.
func TestLeaveIsLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3)
		if err := cs[2].Close(); err != nil {
			t.Fatal(err)
		}
		if err := cs[2].Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		if err := cs[2].Start(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("Start after Close: %v", err)
		}
		d := waitFor(t, 5*time.Second, "b2 left", func() bool {
			return stateOf(cs[0], "b2") == StateLeft && stateOf(cs[1], "b2") == StateLeft
		})
		t.Logf("left seen after %v", d)
		// It is never reported dead, and the rest stay alive.
		time.Sleep(30 * time.Second)
		for _, c := range cs[:2] {
			if s := stateOf(c, "b2"); s != StateLeft && s != "" {
				t.Errorf("%s: b2 is %q", c.LocalName(), s)
			}
			if n := countState(c, StateAlive); n != 2 {
				t.Errorf("%s: %d alive", c.LocalName(), n)
			}
		}
	})
}

// TestKillSuspectThenDead: a broker that stops without leaving is first
// suspect, then dead, within the LAN profile's bound: found by a probe
// within one round of probes (one per member per probe interval) plus the
// probe timeout, then declared dead when the suspicion timeout runs out
// (at most SuspicionMaxTimeoutMult × SuspicionMult × ProbeInterval for a
// cluster this small).
func TestKillSuspectThenDead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3)
		mc := profileConfig(ProfileLAN)
		bound := 3*mc.ProbeInterval + mc.ProbeTimeout +
			time.Duration(mc.SuspicionMaxTimeoutMult*mc.SuspicionMult)*mc.ProbeInterval
		start := time.Now()
		kill(cs[2])
		sawSuspect := map[string]time.Duration{}
		waitFor(t, bound, "b2 dead on both survivors", func() bool {
			dead := 0
			for _, c := range cs[:2] {
				switch stateOf(c, "b2") {
				case StateSuspect:
					if _, ok := sawSuspect[c.LocalName()]; !ok {
						sawSuspect[c.LocalName()] = time.Since(start)
					}
				case StateDead:
					dead++
				}
			}
			return dead == 2
		})
		t.Logf("suspect after %v, dead after %v (bound %v)", sawSuspect, time.Since(start), bound)
		if len(sawSuspect) == 0 {
			t.Error("b2 was never seen suspect before dead")
		}
		for _, c := range cs[:2] {
			if n := countState(c, StateAlive); n != 2 {
				t.Errorf("%s: %d alive", c.LocalName(), n)
			}
		}
	})
}

// TestPartitionHeal: cut one broker off from the other two. Each side
// sees the other suspect, then dead, and keeps running; once the network
// heals, the reconnect loop merges them again and all are alive.
func TestPartitionHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, ProfileLAN)
		cs := l.cluster(3)
		l.faults.partition(addrs(cs[0]), addrs(cs[1], cs[2]))
		suspect := map[string]bool{}
		waitFor(t, time.Minute, "both sides see the other dead", func() bool {
			for _, view := range []struct {
				c      *Cluster
				others []string
			}{{cs[0], []string{"b1", "b2"}}, {cs[1], []string{"b0"}}, {cs[2], []string{"b0"}}} {
				for _, o := range view.others {
					switch stateOf(view.c, o) {
					case StateSuspect:
						suspect[view.c.LocalName()+"→"+o] = true
					case StateDead:
					default:
						return false
					}
				}
			}
			return true
		})
		t.Logf("seen suspect before dead: %v", suspect)
		if stateOf(cs[1], "b2") != StateAlive || stateOf(cs[2], "b1") != StateAlive {
			t.Error("the majority side split up")
		}
		// Stay split well past memberlist's GossipToTheDeadTime, after which
		// only this package's reconnect loop can merge the sides again.
		time.Sleep(45 * time.Second)
		l.faults.heal()
		d := waitFor(t, time.Minute, "all alive after heal", func() bool { return allAlive(cs, 3) })
		t.Logf("converged %v after heal", d)
	})
}

// TestUpdateMeta: a metadata change reaches the other brokers.
func TestUpdateMeta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(3)
		m := Meta{PeerID: "peer-b1", HTTP: "10.0.0.1:80", Agents: 12, Technicians: 3}
		if err := cs[1].UpdateMeta(m); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "new meta everywhere", func() bool {
			for _, c := range cs {
				for _, mm := range c.Members() {
					if mm.Name == "b1" && (mm.Meta.Agents != 12 || mm.Meta.Technicians != 3 || mm.Meta.HTTP != "10.0.0.1:80" || mm.Region != "eu") {
						return false
					}
				}
			}
			return true
		})
		big := m
		big.Region = string(make([]byte, 600))
		if err := cs[1].UpdateMeta(big); !errors.Is(err, ErrTooLarge) {
			t.Errorf("oversized meta: %v", err)
		}
	})
}
