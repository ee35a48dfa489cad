//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// exchangeTimeout bounds the wait for a push/pull exchange between the
// 0.3.0 broker and a broker of this tree: the old broker starts one every
// 15 s (the local gossip profile), so one comes within about that.
const exchangeTimeout = 45 * time.Second

// noteGossipSettle is how long TestAwayMixedCluster lets a note's gossip
// run out before a new broker joins. With the local profile a gossip
// message is sent at most RetransmitMult (2) × log10(members+1) rounds
// after it was queued, 100 ms apart, so after this a joining broker can
// only learn the note from a push/pull state.
const noteGossipSettle = 3 * time.Second

// pushPullRefusals are what a broker logs when it drops a peer's whole
// push/pull state, 0.3.0 and this tree alike.
var pushPullRefusals = []string{"undecodable push/pull state", "push/pull state version"}

// brokerView is one broker and this tree's meshctl logged in at it.
type brokerView struct {
	b    *broker
	tech *tech
}

// TestAwayMixedCluster runs machine notes (why a machine is away) in a
// cluster of two brokers of this tree and one of release 0.3.0, which
// knows no notes: this tree's brokers send the notes' push/pull state
// version 2 only when every live member says it reads it, and gossip
// notes as a message kind 0.3.0 drops.
//
// An agent of this tree bridged to a new broker is stopped (SIGTERM, so
// it sends a "stopped" notice): both new brokers show it offline as
// stopped, the old one offline with no reason; the old broker exchanges
// push/pull state with the new ones while the note exists and never logs
// a state it refused. Started again, the agent is online on all three.
// Then the old broker is stopped, the agent stopped again, and a fourth
// broker of this tree joins once the note's gossip has run out: it learns
// the reason from push/pull state version 2.
func TestAwayMixedCluster(t *testing.T) {
	needBinaries(t)
	old := release030Binaries(t)
	// Debug logs on every broker, both releases (flagfile's environment
	// variable): memberlist's push/pull lines are at debug level.
	t.Setenv("READYMESH_BROKER_LOG_LEVEL", "debug")
	base := testDir(t)
	key := gossipKey(t, base, "gossip.key")
	gossip := func(join string) []string {
		args := []string{"--gossip", "127.0.0.1:0", "--gossip-key-file", key, "--gossip-profile", "local", "--region", "eu"}
		if join != "" {
			args = append(args, "--join", join)
		}
		return args
	}
	eu1 := startBrokerArgs(t, base, "eu-1", compatHeartbeat, gossip("")...)
	eu2 := startBrokerArgs(t, base, "eu-2", compatHeartbeat, gossip(eu1.info.Gossip)...)
	eu3 := startNamedBrokerOf(t, old, "eu-3", base, key, eu1.info.Gossip)
	news := []brokerView{{eu1, eu1.admin(base)}, {eu2, eu2.admin(base)}}
	oldView := brokerView{eu3, eu3.admin(base)}
	all := append(append([]brokerView{}, news...), oldView)
	waitAlive(t, all, 3)
	poll(t, fleetTimeout, "eu-3 listed as 0.3.0", func() (bool, string) {
		out := news[0].tech.ok("brokers", "--json")
		var ms []wire.BrokerMember
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			return false, err.Error()
		}
		for _, m := range ms {
			if m.Name == "eu-3" {
				return strings.HasPrefix(m.Version, "0.3.0 "), m.Version
			}
		}
		return false, out
	})

	news[0].tech.ok("clients", "create", "acme")
	var tok string
	poll(t, fleetTimeout, "a token for acme from eu-2", func() (bool, string) {
		r := news[1].tech.run("tokens", "create", "--client", "acme", "--uses", "1", "--ttl", "1h", "--json")
		if r.err != nil {
			return false, r.stderr
		}
		var tr wire.TokenResult
		if err := json.Unmarshal([]byte(r.stdout), &tr); err != nil || tr.Token == "" {
			return false, fmt.Sprintf("%v: %s", err, r.stdout)
		}
		tok = tr.Token
		return true, ""
	})
	pc := enroll(t, base, tok, "pc-01", "linux-ready.json")
	pc.start()
	began := time.Now()
	cards := onBrokers(t, news, pc.full(), "online and checked in", began, func(c wire.Card) bool {
		return c.Reachability.Online && c.Readiness.CheckInSeq > 0
	})
	if h := cards[1].Reachability.Broker; h != "eu-2" {
		t.Fatalf("the agent is held by %q, want eu-2, the broker its token came from", h)
	}
	// The old broker holds the agent's check-in too: an agent at the
	// defaults (not metered, policy normal, no unclean end) sends no
	// field 0.3.0 does not know, so its record replicates there.
	oc := onBrokers(t, []brokerView{oldView}, pc.full(), "online and checked in on the 0.3.0 broker", began, func(c wire.Card) bool {
		return c.Reachability.Online && c.Readiness.CheckInSeq > 0
	})[0]
	t.Logf("the 0.3.0 broker holds check-in %d of the agent (eu-2 holds %d)", oc.Readiness.CheckInSeq, cards[1].Readiness.CheckInSeq)

	// The notice: stopped on the new brokers, offline on the old one.
	marks := logMarks(all)
	stopped := time.Now()
	pc.stop()
	got := onBrokers(t, news, pc.full(), "stopped", stopped, offlineFor(wire.AwayStopped, "the agent was stopped"))
	if a, b := got[0].Reachability.OfflineSince, got[1].Reachability.OfflineSince; !a.Equal(*b) {
		t.Errorf("offline since %v on eu-1, %v on eu-2: want the same note", a, b)
	}
	oc = onBrokers(t, []brokerView{oldView}, pc.full(), "offline on the 0.3.0 broker", stopped, func(c wire.Card) bool {
		return !c.Reachability.Online
	})[0]
	if r := oc.Reachability; r.OfflineReason != "" {
		t.Errorf("the 0.3.0 broker gives a reason it cannot know: %+v", r)
	}

	// While the note exists, the old broker exchanges push/pull state
	// with a new one (in either direction, the new broker's state reaches
	// it) and drops none.
	var exchanges []string
	poll(t, exchangeTimeout, "a push/pull exchange between eu-3 and a new broker after the notice", func() (bool, string) {
		exchanges = exchangesWith(all, marks, "eu-3")
		return len(exchanges) > 0, "none yet"
	})
	t.Logf("push/pull between the 0.3.0 broker and a new one %s after the notice: %s",
		time.Since(stopped).Round(time.Millisecond), strings.Join(exchanges, "; "))
	noRefusals(t, all)

	restarted := time.Now()
	pc.start()
	onBrokers(t, news, pc.full(), "online again, restarted", restarted, onlineWith("restarted"))
	onBrokers(t, []brokerView{oldView}, pc.full(), "online again on the 0.3.0 broker", restarted, func(c wire.Card) bool {
		return c.Reachability.Online && c.Reachability.Broker == "eu-2"
	})

	// The old broker goes: every live member reads notes now.
	left := time.Now()
	eu3.stop()
	t.Logf("the 0.3.0 broker exited cleanly %s after SIGTERM", time.Since(left).Round(time.Millisecond))
	oldLog := eu3.proc.stderr.String() + eu3.proc.stdout.String()
	for _, s := range pushPullRefusals {
		if strings.Contains(oldLog, s) {
			t.Errorf("the 0.3.0 broker's log says %q:\n%s", s, linesWith(oldLog, s))
		}
	}
	t.Logf("the 0.3.0 broker dropped %d gossip messages of a kind it did not know (debug level); push/pull with it since the notice: %s",
		strings.Count(oldLog, "unknown message kind"), strings.Join(exchangesWith(all, marks, "eu-3"), "; "))
	took := poll(t, fleetTimeout, "eu-3 gone from the new brokers' live members", func() (bool, string) {
		for _, v := range news {
			out := v.tech.ok("brokers", "--json")
			var ms []wire.BrokerMember
			if err := json.Unmarshal([]byte(out), &ms); err != nil {
				return false, err.Error()
			}
			for _, m := range ms {
				if m.Name == "eu-3" && (m.State == "alive" || m.State == "suspect") {
					return false, v.b.name + ": " + out
				}
			}
		}
		return true, ""
	})
	t.Logf("eu-3 no longer a live member of eu-1 and eu-2 %s after its exit", took.Round(time.Millisecond))

	stopped = time.Now()
	pc.stop()
	got = onBrokers(t, news, pc.full(), "stopped again", stopped, offlineFor(wire.AwayStopped, "the agent was stopped"))
	time.Sleep(noteGossipSettle)

	joined := time.Now()
	eu4 := startBrokerArgs(t, base, "eu-4", compatHeartbeat, gossip(eu1.info.Gossip)...)
	v4 := brokerView{eu4, eu4.admin(base)}
	c4 := onBrokers(t, []brokerView{v4}, pc.full(), "stopped, learnt through push/pull (since its start)", joined,
		offlineFor(wire.AwayStopped, "the agent was stopped"))[0]
	if since := c4.Reachability.OfflineSince; !since.Equal(*got[0].Reachability.OfflineSince) {
		t.Errorf("eu-4: offline since %v, eu-1 %v: want the same note", since, got[0].Reachability.OfflineSince)
	}
	noRefusals(t, append(news, v4))
}

// waitAlive polls until every view lists n alive brokers.
func waitAlive(t *testing.T, views []brokerView, n int) {
	t.Helper()
	took := poll(t, fleetTimeout, fmt.Sprintf("%d alive brokers in every view", n), func() (bool, string) {
		for _, v := range views {
			out := v.tech.ok("brokers", "--json")
			if strings.Count(out, `"state": "alive"`) != n {
				return false, v.b.name + ": " + out
			}
		}
		return true, ""
	})
	t.Logf("%d alive brokers in every view after %s", n, took.Round(time.Millisecond))
}

// onBrokers polls machine's card on every view's broker at once until
// ok accepts it on all, within awayTimeout, and logs how long each took
// from start.
func onBrokers(t *testing.T, views []brokerView, machine, what string, start time.Time, ok func(wire.Card) bool) []wire.Card {
	t.Helper()
	cards := make([]wire.Card, len(views))
	took := make([]time.Duration, len(views))
	var wg sync.WaitGroup
	for i, v := range views {
		wg.Go(func() {
			deadline := time.Now().Add(awayTimeout)
			for time.Now().Before(deadline) {
				r := v.tech.run("show", machine, "--json")
				var c wire.Card
				if r.err == nil && json.Unmarshal([]byte(r.stdout), &c) == nil && ok(c) {
					cards[i], took[i] = c, time.Since(start)
					return
				}
				cards[i] = c
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	var seen []string
	for i, v := range views {
		if took[i] == 0 {
			t.Fatalf("%s: the card on %s never showed %s within %s; last reachability %+v", machine, v.b.name, what, awayTimeout, cards[i].Reachability)
		}
		seen = append(seen, fmt.Sprintf("%s %s", v.b.name, took[i].Round(time.Millisecond)))
	}
	t.Logf("%s: %s", what, strings.Join(seen, ", "))
	return cards
}

// logMarks returns how long each view's broker's stderr is now.
func logMarks(views []brokerView) map[string]int {
	m := make(map[string]int, len(views))
	for _, v := range views {
		m[v.b.name] = len(v.b.proc.stderr.String())
	}
	return m
}

// exchangesWith lists the push/pull exchanges between the broker named
// name and the other views' brokers that their logs (memberlist's debug
// lines) show since marks: each side logs the ones it starts.
func exchangesWith(views []brokerView, marks map[string]int, name string) []string {
	var out []string
	for _, from := range views {
		since := from.b.proc.stderr.String()[marks[from.b.name]:]
		for _, to := range views {
			if from.b == to.b || (from.b.name != name && to.b.name != name) {
				continue
			}
			if n := strings.Count(since, "Initiating push/pull sync with: "+to.b.name+" "); n > 0 {
				out = append(out, fmt.Sprintf("%s started %d with %s", from.b.name, n, to.b.name))
			}
		}
	}
	return out
}

// noRefusals fails t if a view's broker logged a push/pull state it
// dropped.
func noRefusals(t *testing.T, views []brokerView) {
	t.Helper()
	for _, v := range views {
		log := v.b.proc.stderr.String()
		for _, s := range pushPullRefusals {
			if strings.Contains(log, s) {
				t.Errorf("%s's log says %q:\n%s", v.b.name, s, linesWith(log, s))
			}
		}
	}
}

// linesWith returns the lines of text that contain s.
func linesWith(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
