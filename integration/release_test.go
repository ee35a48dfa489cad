package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/internal/binaries"
	"github.com/readymesh/readymesh/peer/wire"
)

// previousRelease is the release before this one (issue 13's last
// commit, before versions and offboarding). Its brokers must keep working
// in one cluster with brokers of this tree, agents and technicians of
// either release must be served by both, and a cluster of it must
// upgrade to this tree broker by broker (TestRollingUpgrade).
const previousRelease = "46388e27be353244e438028afdb32ee2ef3b9526"

// previousAgentVersion is stamped into the previous release's sessiond,
// so every card says which build its agent runs. As a pre-release of
// 0.1.0 it sorts before the current agents' version.
const previousAgentVersion = "0.1.0-previous"

// release is one build of the three binaries.
type release struct {
	name string // "old" or "new": names the brokers and agents of the build
	binaries.Paths
}

// currentRelease is the tree under test, built by TestMain.
func currentRelease() release {
	return release{name: "new", Paths: binaries.Paths{Broker: bins.broker, Sessiond: bins.sessiond, Meshctl: bins.meshctl}}
}

// release030 is release 0.3.0, the one before this tree's 0.4.0: its
// brokers gossip presence but know no machine notes, and refuse a
// push/pull state of any version but 1 (TestAwayMixedCluster).
const release030 = "b181fcf5756fc9bd4be5078f0027720388a0f2e1"

// previousReleaseBinaries builds the previous release's binaries into
// bin/previous/<commit>, or reuses them from there. Without the git
// history to build them from, it skips t, saying why, or fails it under
// READYMESH_REQUIRE_NETNS=1 (as in CI), where nothing may be skipped.
func previousReleaseBinaries(t *testing.T) release {
	t.Helper()
	return releaseBinaries(t, "previous release", previousRelease,
		"-X github.com/readymesh/readymesh/sessiond.Version="+previousAgentVersion)
}

// release030Binaries is previousReleaseBinaries for release 0.3.0. Its
// binaries say 0.3.0 on their own (peer/buildinfo), so no flags are
// needed.
func release030Binaries(t *testing.T) release {
	t.Helper()
	return releaseBinaries(t, "release 0.3.0", release030, "")
}

// releaseBinaries builds commit's binaries with ldflags into
// bin/previous/<commit>, or reuses them from there; what names the
// release in messages. It skips or fails t as previousReleaseBinaries
// says when the git history lacks commit.
func releaseBinaries(t *testing.T, what, commit, ldflags string) release {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "bin", "previous", commit)
	start := time.Now()
	p, err := binaries.BuildAt(root, commit, dir, ldflags)
	if errors.Is(err, binaries.ErrNoCommit) {
		msg := "cannot build the " + what + " to check compatibility with: " + err.Error()
		if os.Getenv("READYMESH_REQUIRE_NETNS") == "1" {
			t.Fatal(msg + " (READYMESH_REQUIRE_NETNS=1)")
		}
		t.Skip("skipping: " + msg)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s %.7s: binaries ready in %s after %s", what, commit, dir, time.Since(start).Round(time.Millisecond))
	return release{name: "old", Paths: p}
}

// gossipKeyOf makes a gossip key file with r's `broker gossip-key`.
func gossipKeyOf(t *testing.T, r release, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "gossip.key")
	if out, err := exec.Command(r.Broker, "gossip-key", path).CombinedOutput(); err != nil {
		t.Fatalf("%s broker gossip-key: %v: %s", r.name, err, out)
	}
	return path
}

// compatHeartbeat is the brokers' heartbeat, short as in the other
// cluster tests so a killed broker's agents move quickly.
const compatHeartbeat = 300 * time.Millisecond

// startBrokerOf starts a broker of release r, named r.name, gossiping
// with key. join is the gossip address of a member to join, or "" to seed
// a cluster. It is startBrokerArgs with r's binary; the broker's restart
// method would start this tree's binary instead, so it is not for these.
func startBrokerOf(t *testing.T, r release, base, key, join string) *broker {
	t.Helper()
	gossip := []string{"--gossip", "127.0.0.1:0", "--gossip-key-file", key, "--gossip-profile", "local", "--region", "eu"}
	if join != "" {
		gossip = append(gossip, "--join", join)
	}
	b := &broker{t: t, name: r.name, dir: filepath.Join(base, r.name), heartbeat: compatHeartbeat, extra: gossip, starts: 1}
	args := append([]string{"--data", b.dir, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--name", b.name,
		"--stun", "127.0.0.1:0", "--heartbeat", compatHeartbeat.String()}, gossip...)
	b.proc = startProc(t, "broker "+b.name, nil, r.Broker, args...)
	line := b.proc.waitOutput(t, "broker ready", readyTimeout)
	raw, err := os.ReadFile(b.infoPath())
	if err != nil {
		t.Fatalf("broker %s printed %q but: %v", b.name, line, err)
	}
	if err := json.Unmarshal(raw, &b.info); err != nil || b.info.PeerID == "" || b.info.Gossip == "" {
		t.Fatalf("broker %s: broker.json lacks peer_id or gossip_addr (%v): %s", b.name, err, raw)
	}
	return b
}

// relTech is a technician's home driven by one release's meshctl, logged
// in at one broker with its admin credential.
type relTech struct {
	t    *testing.T
	name string // "old meshctl at new", for messages
	home string
	bin  string
}

func loginOf(t *testing.T, r release, base string, b *broker) *relTech {
	t.Helper()
	c := &relTech{t: t, name: r.name + " meshctl at " + b.name, home: filepath.Join(base, "tech-"+r.name+"-at-"+b.name), bin: r.Meshctl}
	if out := c.ok("login", "--credential", b.credential()); !strings.Contains(out, "logged in as admin") {
		t.Fatalf("%s: login: unexpected output %q", c.name, out)
	}
	return c
}

func (c *relTech) run(args ...string) result {
	c.t.Helper()
	return runCmd(c.t, cmdTimeout, []string{"READYMESH_HOME=" + c.home, "READYMESH_SESSION_ADDR=127.0.0.1:0"}, c.bin, args...)
}

// ok runs meshctl and fails the test unless it succeeds.
func (c *relTech) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.err != nil {
		c.t.Fatalf("%s: meshctl %s: %v", c.name, strings.Join(args, " "), r)
	}
	return r.stdout
}

// tryMachines runs `meshctl machines --json`.
func (c *relTech) tryMachines() ([]wire.Card, error) {
	c.t.Helper()
	r := c.run("machines", "--json")
	if r.err != nil {
		return nil, fmt.Errorf("%s: meshctl machines: %v: %s", c.name, r.err, r.stderr)
	}
	var cards []wire.Card
	if err := json.Unmarshal([]byte(r.stdout), &cards); err != nil {
		return nil, fmt.Errorf("%s: meshctl machines --json: %v\n%s", c.name, err, r.stdout)
	}
	return cards, nil
}

// relAgent is an agent of one release, enrolled through one broker.
type relAgent struct {
	*agent
	rel    release
	holder string // the broker expected to hold its bridge
	acked  uint64 // the last check-in sequence number a broker acknowledged
}

// enrollOf enrols an agent of release r with token, named after its
// release and the broker that issued the token, which then holds its
// bridge. It plays the windows-ready fixture.
func enrollOf(t *testing.T, r release, base, token string, issuer *broker) *relAgent {
	t.Helper()
	name := r.name + "-pc-via-" + issuer.name
	a := &agent{t: t, name: name, dir: freshDir(base, "agent-"+name), fixture: fixture(t, "windows-ready.json")}
	res := runCmd(t, cmdTimeout, nil, r.Sessiond, "enroll", "--token", token, "--name", name, "--state", a.dir)
	if res.err != nil {
		t.Fatalf("%s sessiond: enroll %s: %v", r.name, name, res)
	}
	m := enrolledRE.FindStringSubmatch(res.stdout)
	if m == nil || m[1] != name {
		t.Fatalf("%s sessiond: enroll %s: unexpected output %q", r.name, name, res.stdout)
	}
	a.client, a.id = m[2], m[3]
	if r.Sessiond != bins.sessiond {
		a.bin = r.Sessiond // an older release's flags: runArgs adds none of this tree's
	}
	return &relAgent{agent: a, rel: r, holder: issuer.name}
}

// start starts `sessiond run` with the agent's release.
func (a *relAgent) start() {
	a.t.Helper()
	a.runs++
	a.proc = startProc(a.t, fmt.Sprintf("agent %s (run %d)", a.name, a.runs), nil, a.rel.Sessiond, a.runArgs()...)
}

// checkIn runs `sessiond checkin` through the running agent and records
// the sequence number its broker acknowledged.
func (a *relAgent) checkIn() {
	a.t.Helper()
	r := runCmd(a.t, cmdTimeout, nil, a.rel.Sessiond, "checkin", "--state", a.dir)
	var seq uint64
	if _, err := fmt.Sscanf(r.stdout, "checked in: seq %d", &seq); r.err != nil || err != nil {
		a.t.Fatalf("%s sessiond checkin for %s: %v", a.rel.name, a.name, r)
	}
	a.acked = seq
}
