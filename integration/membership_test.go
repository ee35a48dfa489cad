package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	techclient "github.com/readymesh/readymesh/peer/tech"
)

// TestBrokersThatJoinLaterAreAnnounced starts one broker, enrols agents
// and logs a technician in there, and only then grows the cluster to
// three. The agents hear of the two new brokers on their presence
// streams, and the technician on its next command; when the first broker
// is killed with SIGKILL, the agents come online on the new ones (one of
// them after a restart, from the list it stored), and the technician
// reaches the whole fleet through them.
func TestBrokersThatJoinLaterAreAnnounced(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	key := gossipKey(t, base, "gossip.key")
	args := []string{"--gossip", "127.0.0.1:0", "--gossip-key-file", key, "--gossip-profile", "local", "--region", "eu"}
	first := startBrokerArgs(t, base, "eu-1", 300*time.Millisecond, args...)
	admin := first.admin(base)
	admin.ok("clients", "create", "acme")
	tok := admin.token("acme", 3, time.Hour).Token
	var agents []*agent
	for i := range 3 {
		a := enroll(t, base, tok, fmt.Sprintf("pc-%d", i+1), "windows-ready.json")
		a.start()
		agents = append(agents, a)
	}
	waitOnline(t, admin, 20*time.Second, agents...)

	joined := []*broker{
		startBrokerArgs(t, base, "eu-2", 300*time.Millisecond, append(args, "--join", first.info.Gossip)...),
		startBrokerArgs(t, base, "eu-3", 300*time.Millisecond, append(args, "--join", first.info.Gossip)...),
	}
	watcher := joined[0].admin(base)
	// Not fatal: with agents that never learn, the failover below shows
	// what that costs.
	if took, ok := waitLearned(t, 20*time.Second, agents); ok {
		t.Logf("every agent learned of eu-2 and eu-3 %s after they started", took.Round(time.Millisecond))
	} else {
		t.Errorf("the agents did not log learning of eu-2 and eu-3")
	}
	// Any command refreshes the technician's brokers; this one is no
	// `meshctl brokers`.
	admin.ok("machines")
	if names := storedBrokers(t, admin.home); !slices.Contains(names, "eu-2") || !slices.Contains(names, "eu-3") {
		t.Errorf("after a command the technician keeps brokers %v, want eu-2 and eu-3 among them", names)
	}

	// One agent is down while the broker dies, and must find the others
	// from the list it stored.
	restarted := agents[2]
	restarted.stop()
	first.proc.signal(t, syscall.SIGKILL)
	first.proc.wait(t, exitTimeout)
	killed := time.Now()
	restarted.start()

	// The agents, as eu-2 sees them (a technician logged in there)…
	poll(t, 45*time.Second, "every agent online on eu-2 or eu-3", func() (bool, string) {
		return onJoined(watcher, agents, joined)
	})
	t.Logf("eu-1 killed: every agent online on eu-2 or eu-3 %s later", time.Since(killed).Round(time.Millisecond))
	// … and through the technician logged in at the dead broker.
	if ok, why := onJoined(admin, agents, joined); !ok {
		t.Errorf("the technician logged in at eu-1, through eu-2 or eu-3: %s", why)
	}
}

// onJoined reports whether c lists every agent online on one of joined,
// or what it lists instead.
func onJoined(c *tech, agents []*agent, joined []*broker) (bool, string) {
	cards, err := c.tryMachines()
	if err != nil {
		return false, err.Error()
	}
	var wrong []string
	for _, a := range agents {
		card, ok := cardOf(cards, a.id)
		if !ok || !card.Reachability.Online || card.Reachability.Broker != joined[0].name && card.Reachability.Broker != joined[1].name {
			wrong = append(wrong, fmt.Sprintf("%s on %q", a.name, card.Reachability.Broker))
		}
	}
	return len(wrong) == 0, strings.Join(wrong, ", ")
}

// waitLearned waits until every agent has logged a broker list of three,
// and reports how long that took.
func waitLearned(t *testing.T, d time.Duration, agents []*agent) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		learned := 0
		for _, a := range agents {
			if strings.Contains(a.proc.stderr.String(), `msg="broker list changed" known=3 `) {
				learned++
			}
		}
		if learned == len(agents) {
			return time.Since(start), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, false
}

// storedBrokers returns the names of the brokers a technician home keeps
// for failover.
func storedBrokers(t *testing.T, home string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(home, techclient.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg techclient.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", techclient.ConfigFile, err)
	}
	var names []string
	for _, b := range cfg.Brokers {
		names = append(names, b.Name)
	}
	return names
}
