package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// upgradeStep bounds one step of the rolling upgrade: a broker stopped,
// its agents online elsewhere, its replacement serving and caught up.
const upgradeStep = 45 * time.Second

// TestRollingUpgrade runs the README's rolling upgrade with the real
// binaries: a cluster of three brokers and three agents of the previous
// release, one agent enrolled through each broker. Each broker in turn is
// stopped (SIGTERM), its agents fail over, and this tree's broker starts
// on its data directory; after every step every agent is online and every
// check-in acknowledged so far is on every live broker, asked through
// this tree's meshctl. Then meshctl brokers shows this build's version on
// all three, and the reverse step, one broker downgraded to the previous
// release on the same data directory, serves the same fleet (README:
// "Rolling upgrades" says when that stops being true).
func TestRollingUpgrade(t *testing.T) {
	needBinaries(t)
	old, cur := previousReleaseBinaries(t), currentRelease()
	base := testDir(t)
	key := gossipKeyOf(t, old, base)
	names := []string{"eu-1", "eu-2", "eu-3"}
	bs := make([]*broker, 3)
	for i, n := range names {
		join := ""
		if i > 0 {
			join = bs[0].info.Gossip
		}
		bs[i] = startNamedBrokerOf(t, old, n, base, key, join)
	}
	views := make([]*relTech, 3)
	for i, b := range bs {
		views[i] = loginOf(t, cur, base, b)
	}
	waitBrokersAlive(t, views, 3)

	oldAdmin := loginOf(t, old, base, bs[0])
	oldAdmin.ok("clients", "create", "acme")
	var agents []*relAgent
	for i, b := range bs {
		var tok string
		poll(t, fleetTimeout, "a token from "+b.name, func() (bool, string) {
			var err error
			tok, err = tryToken(views[i])
			return err == nil, fmt.Sprint(err)
		})
		agents = append(agents, enrollOf(t, old, base, tok, b))
	}
	for _, a := range agents {
		a.start()
	}
	waitFleetEverywhere(t, views, agents)
	for _, a := range agents {
		a.checkIn()
	}
	waitFleetEverywhere(t, views, agents)

	for i := range bs {
		took := replaceBroker(t, bs, i, cur, key)
		views[i] = loginOf(t, cur, base, bs[i]) // its ports are new
		for _, a := range agents {
			a.checkIn()
		}
		took += waitFleetEverywhere(t, views, agents)
		t.Logf("%s upgraded: every agent online and every check-in on every broker %s after its stop", names[i], took.Round(time.Millisecond))
	}

	var members []wire.BrokerMember
	poll(t, fleetTimeout, "every broker listed with this build's version", func() (bool, string) {
		out := views[0].ok("brokers", "--json")
		members = nil
		if err := json.Unmarshal([]byte(out), &members); err != nil {
			return false, err.Error()
		}
		want := bridge.AgentVersion(bridge.UserAgent())
		for _, m := range members {
			if m.Version != want {
				return false, fmt.Sprintf("%s at %q, want %q", m.Name, m.Version, want)
			}
		}
		return len(members) == 3, out
	})

	// The reverse: eu-3 back to the previous release on the same disk.
	took := replaceBroker(t, bs, 2, old, key)
	views[2] = loginOf(t, cur, base, bs[2])
	for _, a := range agents {
		a.checkIn()
	}
	took += waitFleetEverywhere(t, views, agents)
	t.Logf("eu-3 downgraded: every agent online and every check-in on every broker %s after its stop", took.Round(time.Millisecond))
	poll(t, fleetTimeout, "the downgraded broker listed as before 0.2.0", func() (bool, string) {
		out := views[0].ok("brokers", "--json")
		return strings.Contains(out, `"version": "before 0.2.0"`), out
	})
}

// startNamedBrokerOf is startBrokerOf with a name of its own, so several
// brokers of one release run side by side.
func startNamedBrokerOf(t *testing.T, r release, name, base, key, join string) *broker {
	t.Helper()
	rn := r
	rn.name = name
	return startBrokerOf(t, rn, base, key, join)
}

// replaceBroker stops bs[i] with SIGTERM, waits for its agents to move,
// and starts release r's broker on its data directory, joining another
// live broker. It returns how long the broker was away.
func replaceBroker(t *testing.T, bs []*broker, i int, r release, key string) time.Duration {
	t.Helper()
	start := time.Now()
	b := bs[i]
	b.proc.signal(t, syscall.SIGTERM)
	if err := b.proc.wait(t, exitTimeout); err != nil {
		t.Fatalf("%s: exit after SIGTERM: %v", b.name, err)
	}
	join := bs[(i+1)%len(bs)].info.Gossip
	nb := startNamedBrokerOf(t, r, b.name, filepath.Dir(b.dir), key, join)
	if nb.info.PeerID != b.info.PeerID {
		t.Fatalf("%s came back as %s, was %s: the data directory's key was not kept", b.name, nb.info.PeerID, b.info.PeerID)
	}
	bs[i] = nb
	return time.Since(start)
}

// waitFleetEverywhere polls until every view lists every agent online,
// on any broker, at or past its last acknowledged check-in.
func waitFleetEverywhere(t *testing.T, views []*relTech, agents []*relAgent) time.Duration {
	t.Helper()
	return poll(t, upgradeStep, "every agent online with every acknowledged check-in, in every view", func() (bool, string) {
		for _, v := range views {
			cards, err := v.tryMachines()
			if err != nil {
				return false, err.Error()
			}
			if len(cards) != len(agents) {
				return false, fmt.Sprintf("%s: %d machines %v, want %d", v.name, len(cards), names(cards), len(agents))
			}
			for _, a := range agents {
				c, ok := cardOf(cards, a.id)
				switch {
				case !ok:
					return false, v.name + ": " + a.name + " missing"
				case !c.Reachability.Online:
					return false, v.name + ": " + a.name + " offline"
				case c.Readiness.CheckInSeq < a.acked:
					return false, fmt.Sprintf("%s: %s at check-in %d, acknowledged %d", v.name, a.name, c.Readiness.CheckInSeq, a.acked)
				}
			}
		}
		return true, ""
	})
}
