package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// gossipKey makes a gossip key file with `broker gossip-key`.
func gossipKey(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if out, err := exec.Command(bins.broker, "gossip-key", path).CombinedOutput(); err != nil {
		t.Fatalf("broker gossip-key: %v: %s", err, out)
	}
	return path
}

// startCluster starts n brokers on loopback that gossip with key; every
// broker after the first joins the first.
func startCluster(t *testing.T, base, key string, n int, heartbeat time.Duration) []*broker {
	t.Helper()
	args := []string{"--gossip", "127.0.0.1:0", "--gossip-key-file", key, "--gossip-profile", "local", "--region", "eu"}
	first := startBrokerArgs(t, base, "eu-1", heartbeat, args...)
	bs := []*broker{first}
	for i := 2; i <= n; i++ {
		bs = append(bs, startBrokerArgs(t, base, "eu-"+strconv.Itoa(i), heartbeat,
			append(args, "--join", first.info.Gossip)...))
	}
	return bs
}

// TestClusterFailover runs three brokers on loopback with agents spread
// across them, kills the broker holding one of them with SIGKILL during a
// burst of check-ins, and expects: the agent online on another broker
// within 10 s; every check-in the dead broker acknowledged readable from
// the survivors; the dead broker, restarted with an empty disk, catching up
// on the whole fleet.
func TestClusterFailover(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	key := gossipKey(t, base, "gossip.key")
	bs := startCluster(t, base, key, 3, 300*time.Millisecond)
	admins := make([]*tech, len(bs))
	for i, b := range bs {
		admins[i] = b.admin(base)
	}
	poll(t, 20*time.Second, "three alive brokers", func() (bool, string) {
		out := admins[0].ok("brokers", "--json")
		return strings.Count(out, `"state": "alive"`) == 3, out
	})
	admins[0].ok("clients", "create", "acme")
	poll(t, 10*time.Second, "the client replicated", func() (bool, string) {
		out := admins[2].ok("clients", "ls", "--json")
		return strings.Contains(out, `"acme"`), out
	})
	// One agent per broker: each enrols with a token from its own broker.
	var agents []*agent
	for i, b := range bs {
		tok := admins[i].token("acme", 1, time.Hour).Token
		a := enroll(t, base, tok, "pc-"+strconv.Itoa(i+1), "windows-ready.json")
		a.start()
		agents = append(agents, a)
		_ = b // the token names b: the agent enrols and bridges there
	}
	cards := waitOnline(t, admins[0], 20*time.Second, agents...)
	for i, a := range agents {
		c, _ := cardOf(cards, a.id)
		if c.Reachability.Broker != bs[i].name {
			t.Errorf("%s held by %q, want %s", a.name, c.Reachability.Broker, bs[i].name)
		}
	}

	// A burst of check-ins on the agent held by eu-2, which is killed
	// mid-burst.
	victim, held := bs[1], agents[1]
	// The technician logged in at eu-2 refreshes its broker list, as any
	// meshctl brokers does, so it can fail over too.
	admins[1].ok("brokers")
	var mu sync.Mutex
	var acked []uint64
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				r := runCmdContext(t.Context(), nil, bins.sessiond, "checkin", "--state", held.dir)
				if r.err != nil {
					continue
				}
				var seq uint64
				if _, err := fmt.Sscanf(r.stdout, "checked in: seq %d", &seq); err == nil {
					mu.Lock()
					acked = append(acked, seq)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	victim.proc.signal(t, 9)
	victim.proc.wait(t, exitTimeout)
	killed := time.Now()
	wg.Wait()

	moved := poll(t, 15*time.Second, "the agent online on a surviving broker", func() (bool, string) {
		c := admins[0].show(held.full())
		return c.Reachability.Online && c.Reachability.Broker != victim.name, c.Reachability.Broker
	})
	if since := time.Since(killed); since > 10*time.Second {
		t.Errorf("agent back online %s after the kill, bound 10 s", since)
	}
	t.Logf("agent online again on another broker %s after the kill; %d check-ins acknowledged", moved, len(acked))
	if len(acked) == 0 {
		t.Fatal("no check-in was acknowledged during the burst")
	}
	for _, i := range []int{0, 2} {
		hist := admins[i].show(held.full()).History
		var seqs []uint64
		for _, h := range hist {
			seqs = append(seqs, h.Seq)
		}
		for _, s := range acked {
			if !slices.Contains(seqs, s) {
				t.Errorf("%s: acknowledged check-in %d missing from history %v", bs[i].name, s, seqs)
			}
		}
	}

	// The technician whose broker died reaches the fleet through another.
	if cards, err := admins[1].tryMachines(); err != nil || len(cards) != 3 {
		t.Errorf("technician of the dead broker: %d machines, %v; want all 3 through another broker", len(cards), err)
	}

	// Restart eu-2 with an empty disk, on its old gossip address: it
	// catches up on the whole fleet.
	if err := os.RemoveAll(victim.dir); err != nil {
		t.Fatal(err)
	}
	fresh := startBrokerArgs(t, base, "eu-2", 300*time.Millisecond, "--gossip", victim.info.Gossip,
		"--gossip-key-file", key, "--gossip-profile", "local", "--region", "eu", "--join", bs[0].info.Gossip)
	fa := fresh.admin(base)
	caught := poll(t, 60*time.Second, "the empty broker caught up", func() (bool, string) {
		cs, err := fa.tryMachines()
		if err != nil {
			return false, err.Error()
		}
		ok := len(cs) == 3
		for _, c := range cs {
			ok = ok && c.Readiness.CheckInSeq > 0
		}
		return ok, strconv.Itoa(len(cs)) + " machines"
	})
	t.Logf("eu-2 restarted with an empty disk served the whole fleet after %s", caught)
}

// TestClusterWrongGossipKey starts a broker with another key: it cannot
// join, and its log says why.
func TestClusterWrongGossipKey(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	bs := startCluster(t, base, gossipKey(t, base, "good.key"), 1, 0)
	bad := startBrokerArgs(t, base, "intruder", 0, "--gossip", "127.0.0.1:0", "--gossip-key-file",
		gossipKey(t, base, "other.key"), "--gossip-profile", "local", "--join", bs[0].info.Gossip)
	admin := bs[0].admin(base)
	poll(t, 20*time.Second, "a log line saying the gossip key is wrong", func() (bool, string) {
		logs := bad.proc.stderr.String() + bs[0].proc.stderr.String()
		return strings.Contains(logs, "wrong --gossip-key-file"), "no such line yet"
	})
	out := admin.ok("brokers", "--json")
	if strings.Contains(out, "intruder") {
		t.Fatalf("a broker with another gossip key joined:\n%s", out)
	}
}

// TestClusterTokenUsedUpEverywhere uses a one-use token issued by one
// broker at another broker of the cluster; a third broker then refuses it
// as used up, and a broker outside the cluster refuses it as another
// broker's token.
func TestClusterTokenUsedUpEverywhere(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	bs := startCluster(t, base, gossipKey(t, base, "gossip.key"), 3, 0)
	admin := bs[0].admin(base)
	admin.ok("clients", "create", "acme")
	tok := admin.token("acme", 1, time.Hour).Token
	dir := freshDir(base, "agent-remote")
	var r result
	// Retried until the token has replicated to the second broker.
	poll(t, 10*time.Second, "enrolment at the second broker", func() (bool, string) {
		r = tryEnroll(t, tok, "remote-pc", dir, "--broker", bs[1].infoPath())
		return r.err == nil, r.stderr
	})
	poll(t, 10*time.Second, "the third broker refusing the used-up token", func() (bool, string) {
		r = tryEnroll(t, tok, "third-pc", freshDir(base, "agent-third"), "--broker", bs[2].infoPath())
		return r.err != nil && strings.Contains(r.stderr, "used up"), r.String()
	})
	outsider := startBroker(t, base, "outsider", 0)
	r = tryEnroll(t, tok, "stray-pc", freshDir(base, "agent-stray"), "--broker", outsider.infoPath())
	if r.err == nil || !strings.Contains(r.stderr, "issued by broker "+bs[0].info.PeerID) {
		t.Fatalf("a broker outside the cluster: %v", r)
	}
}

// TestClusterScopes adds a technician scoped to one client on one broker
// and logs it in at another: it sees that client's machines wherever they
// are bridged, never another client's, and its one-time login token is
// used up on every broker.
func TestClusterScopes(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	bs := startCluster(t, base, gossipKey(t, base, "gossip.key"), 3, 300*time.Millisecond)
	admin := bs[0].admin(base)
	admin.ok("clients", "create", "acme")
	admin.ok("clients", "create", "globex")
	acmePC := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "acme-pc", "windows-ready.json")
	globexPC := enroll(t, base, admin.token("globex", 1, time.Hour).Token, "globex-pc", "linux-ready.json")
	acmePC.start()
	globexPC.start()
	waitOnline(t, admin, 20*time.Second, acmePC, globexPC)

	out := admin.ok("technicians", "add", "t1", "--clients", "acme", "--modes", "read-only", "--json")
	var added struct {
		LoginToken string `json:"login_token"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.LoginToken == "" {
		t.Fatalf("technicians add: %v\n%s", err, out)
	}
	t1 := newTech(t, base, "t1")
	poll(t, 10*time.Second, "t1 logging in at the second broker", func() (bool, string) {
		r := t1.run("login", "--credential", added.LoginToken, "--broker", bs[1].infoPath())
		return r.err == nil, r.stderr
	})
	cards := t1.machines()
	if len(cards) != 1 || cards[0].Name != "acme-pc" || !cards[0].Reachability.Online {
		t.Fatalf("t1 at eu-2 sees %v, want only acme-pc, online", names(cards))
	}
	if r := t1.run("show", "globex/globex-pc"); r.err == nil {
		t.Fatalf("t1 could show a globex machine at eu-2:\n%s", r.stdout)
	}
	other := newTech(t, base, "t1-again")
	poll(t, 10*time.Second, "the used login token refused at the third broker", func() (bool, string) {
		r := other.run("login", "--credential", added.LoginToken, "--broker", bs[2].infoPath())
		return r.err != nil && strings.Contains(r.stderr, "token"), r.String()
	})
}

// TestClusterTwoRegions runs two regions the intended way: eu-1 and eu-2
// gossip in their region's pool (LAN timing), us-1 in its own, and all
// three in one pool across regions (WAN timing). A technician in us sees
// an agent bridged in eu, every broker lists all three with their regions,
// and when eu-1 is killed its region's pool declares it dead.
func TestClusterTwoRegions(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	key := gossipKey(t, base, "gossip.key")
	common := []string{"--gossip", "127.0.0.1:0", "--gossip-key-file", key, "--gossip-profile", "local",
		"--wan-gossip", "127.0.0.1:0", "--wan-gossip-profile", "local"}
	eu1 := startBrokerArgs(t, base, "eu-1", 300*time.Millisecond, append(common, "--region", "eu")...)
	eu2 := startBrokerArgs(t, base, "eu-2", 300*time.Millisecond, append(common, "--region", "eu",
		"--join", eu1.info.Gossip, "--wan-join", eu1.info.WANGossip)...)
	us1 := startBrokerArgs(t, base, "us-1", 300*time.Millisecond, append(common, "--region", "us",
		"--wan-join", eu1.info.WANGossip)...)
	us := us1.admin(base)
	poll(t, 20*time.Second, "three alive brokers seen from us-1", func() (bool, string) {
		out := us.ok("brokers", "--json")
		return strings.Count(out, `"state": "alive"`) == 3 && strings.Contains(out, `"region": "eu"`), out
	})
	us.ok("clients", "create", "acme")
	eu := eu2.admin(base)
	var tok string
	poll(t, 10*time.Second, "the client replicated across regions", func() (bool, string) {
		r := eu.run("tokens", "create", "--client", "acme", "--json")
		if r.err != nil {
			return false, r.stderr
		}
		tok = r.stdout
		return true, ""
	})
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(tok), &tr); err != nil {
		t.Fatal(err)
	}
	a := enroll(t, base, tr.Token, "paris-pc", "windows-ready.json")
	a.start()
	cards := waitOnline(t, us, 20*time.Second, a)
	if c, _ := cardOf(cards, a.id); c.Reachability.Broker != "eu-2" {
		t.Errorf("from us-1 the agent is held by %q, want eu-2", c.Reachability.Broker)
	}
	eu1.proc.signal(t, 9)
	eu1.proc.wait(t, exitTimeout)
	poll(t, 30*time.Second, "eu-2 seeing eu-1 dead", func() (bool, string) {
		out := eu.ok("brokers", "--json")
		i := strings.Index(out, `"name": "eu-1"`)
		return i >= 0 && strings.Contains(out[i:min(len(out), i+200)], `"state": "dead"`), out
	})
}
