package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Bounds of the mixed-release cluster's steps: each is far above what the
// step takes on an idle machine.
const (
	fleetTimeout    = 20 * time.Second // every view agreeing on the fleet
	failoverTimeout = 15 * time.Second // a killed broker's agents online on the other
)

// TestCompatPreviousRelease runs the previous release's binaries beside
// this tree's in one cluster, both ways round: an old broker seeds it and a
// new one joins, then a new one seeds and an old one joins. In each, an
// old and a new agent enrol through each broker; every broker, asked by
// both releases' meshctl, lists every machine with the same stored
// readiness (check-ins acknowledged by either broker replicated to the
// other); then the seed is killed with SIGKILL and the two agents it held,
// one of each release, come online on the survivor, which stores their
// next check-ins. So agents move from an old broker to a new one in the
// first case and from a new broker to an old one in the second.
func TestCompatPreviousRelease(t *testing.T) {
	needBinaries(t)
	old, cur := previousReleaseBinaries(t), currentRelease()
	t.Run("OldSeedsNewJoins", func(t *testing.T) { checkMixedCluster(t, old, cur) })
	t.Run("NewSeedsOldJoins", func(t *testing.T) { checkMixedCluster(t, cur, old) })
}

// checkMixedCluster is one way round of TestCompatPreviousRelease: a
// broker of seedRel seeds the cluster, one of joinRel joins it.
func checkMixedCluster(t *testing.T, seedRel, joinRel release) {
	base := testDir(t)
	key := gossipKeyOf(t, seedRel, base)
	seed := startBrokerOf(t, seedRel, base, key, "")
	joiner := startBrokerOf(t, joinRel, base, key, seed.info.Gossip)
	rels := []release{seedRel, joinRel}
	seedViews, joinerViews := viewsOf(t, rels, base, seed), viewsOf(t, rels, base, joiner)
	views := append(slices.Clone(seedViews), joinerViews...)
	waitBrokersAlive(t, views, 2)

	agents := enrollMixed(t, base, rels, seedViews[0], joinerViews[1], seed, joiner)
	for _, a := range agents {
		a.start()
	}
	waitSameFleet(t, views, agents)
	for _, a := range agents {
		a.checkIn()
	}
	took := waitSameFleet(t, views, agents)
	t.Logf("both brokers list all %d machines alike through both meshctl builds, with every acknowledged check-in (%s after the last)",
		len(agents), took.Round(time.Millisecond))

	seed.proc.signal(t, syscall.SIGKILL)
	seed.proc.wait(t, exitTimeout)
	moved := heldBy(agents, seed.name)
	for _, a := range moved {
		a.holder = joiner.name
	}
	took = waitSameFleetWithin(t, failoverTimeout, joinerViews, agents)
	t.Logf("%s broker killed: its agents %v online on the %s broker %s later", seed.name, agentNames(moved), joiner.name, took.Round(time.Millisecond))
	for _, a := range moved {
		a.checkIn()
	}
	waitSameFleet(t, joinerViews, agents)
}

// viewsOf logs in at b with each release's meshctl.
func viewsOf(t *testing.T, rels []release, base string, b *broker) []*relTech {
	t.Helper()
	var out []*relTech
	for _, r := range rels {
		out = append(out, loginOf(t, r, base, b))
	}
	return out
}

// waitBrokersAlive polls until every view lists n alive brokers.
func waitBrokersAlive(t *testing.T, views []*relTech, n int) {
	t.Helper()
	poll(t, fleetTimeout, fmt.Sprintf("%d alive brokers in every view", n), func() (bool, string) {
		for _, v := range views {
			out := v.ok("brokers", "--json")
			if strings.Count(out, `"state": "alive"`) != n {
				return false, v.name + ": " + out
			}
		}
		return true, ""
	})
}

// enrollMixed creates the client through the seed's own meshctl, then has
// each broker's own meshctl issue a token there, once the client has
// replicated to it, and enrols an agent of each release with each token.
func enrollMixed(t *testing.T, base string, rels []release, seedAdmin, joinerAdmin *relTech, seed, joiner *broker) []*relAgent {
	t.Helper()
	seedAdmin.ok("clients", "create", "acme")
	tokens := make([]string, 2)
	for i, c := range []*relTech{seedAdmin, joinerAdmin} {
		poll(t, fleetTimeout, "a token for the client from "+c.name, func() (bool, string) {
			var err error
			tokens[i], err = tryToken(c)
			return err == nil, fmt.Sprint(err)
		})
	}
	var agents []*relAgent
	for i, issuer := range []*broker{seed, joiner} {
		for _, r := range rels {
			agents = append(agents, enrollOf(t, r, base, tokens[i], issuer))
		}
	}
	return agents
}

// tryToken creates a two-use enrolment token for client acme: one for
// an agent of each release. It fails until the client is known at c's
// broker.
func tryToken(c *relTech) (string, error) {
	r := c.run("tokens", "create", "--client", "acme", "--uses", "2", "--ttl", "1h", "--json")
	if r.err != nil {
		return "", fmt.Errorf("tokens create: %v: %s", r.err, r.stderr)
	}
	var tok wire.TokenResult
	if err := json.Unmarshal([]byte(r.stdout), &tok); err != nil || tok.Token == "" {
		return "", fmt.Errorf("tokens create --json: %v: %s", err, r.stdout)
	}
	return tok.Token, nil
}

// stored is what the test compares of one machine across views: the
// stored readiness, which replication must copy exactly, and the
// presence, which gossip spreads.
type stored struct {
	name, client, state string
	seq                 uint64
	lastCheckIn         string
	agentVersion        string
	behind              bool
	online              bool
	broker              string
}

func storedOf(c wire.Card) stored {
	s := stored{name: c.Name, client: c.Client, state: c.Readiness.State, seq: c.Readiness.CheckInSeq,
		agentVersion: c.Readiness.AgentVersion, behind: c.Readiness.AgentBehind,
		online: c.Reachability.Online, broker: c.Reachability.Broker}
	if c.Readiness.LastCheckIn != nil {
		s.lastCheckIn = c.Readiness.LastCheckIn.UTC().Format(time.RFC3339Nano)
	}
	return s
}

// waitSameFleet polls until every view lists exactly agents, as expected
// (fleetProblem), and all views list them alike.
func waitSameFleet(t *testing.T, views []*relTech, agents []*relAgent) time.Duration {
	t.Helper()
	return waitSameFleetWithin(t, fleetTimeout, views, agents)
}

func waitSameFleetWithin(t *testing.T, d time.Duration, views []*relTech, agents []*relAgent) time.Duration {
	t.Helper()
	return poll(t, d, "every view listing every machine alike", func() (bool, string) {
		var first map[string]stored
		for _, v := range views {
			cards, err := v.tryMachines()
			if err != nil {
				return false, err.Error()
			}
			if why := fleetProblem(cards, agents); why != "" {
				return false, v.name + ": " + why
			}
			got := map[string]stored{}
			for _, c := range cards {
				got[c.ID] = storedOf(c)
			}
			if first == nil {
				first = got
			} else if !maps.Equal(first, got) {
				return false, fmt.Sprintf("%s lists %+v, %s lists %+v", views[0].name, first, v.name, got)
			}
		}
		return true, ""
	})
}

// fleetProblem says how cards differ from what agents should show, or ""
// if they do not: each agent online on its holder, with at least its
// acknowledged check-in, reporting its release's agent version, behind the
// newest exactly when it is old.
func fleetProblem(cards []wire.Card, agents []*relAgent) string {
	if len(cards) != len(agents) {
		return fmt.Sprintf("%d machines %v, want %d", len(cards), names(cards), len(agents))
	}
	for _, a := range agents {
		c, ok := cardOf(cards, a.id)
		r := c.Readiness
		old := r.AgentVersion == previousAgentVersion
		switch {
		case !ok:
			return a.name + " missing"
		case !c.Reachability.Online || c.Reachability.Broker != a.holder:
			return fmt.Sprintf("%s online %v on %q, want online on %q", a.name, c.Reachability.Online, c.Reachability.Broker, a.holder)
		case r.CheckInSeq == 0 || r.CheckInSeq < a.acked:
			return fmt.Sprintf("%s at check-in %d, want at least %d", a.name, r.CheckInSeq, max(a.acked, 1))
		case old != (a.rel.name == "old") || r.AgentVersion == "":
			return fmt.Sprintf("%s (%s release) reports agent version %q", a.name, a.rel.name, r.AgentVersion)
		case r.AgentBehind != old:
			return fmt.Sprintf("%s at %s: agent_behind %v", a.name, r.AgentVersion, r.AgentBehind)
		}
	}
	return ""
}

// heldBy returns the agents expected on the broker named name.
func heldBy(agents []*relAgent, name string) []*relAgent {
	var out []*relAgent
	for _, a := range agents {
		if a.holder == name {
			out = append(out, a)
		}
	}
	return out
}

func agentNames(agents []*relAgent) []string {
	out := make([]string, len(agents))
	for i, a := range agents {
		out[i] = a.name
	}
	return out
}
