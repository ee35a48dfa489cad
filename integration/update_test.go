package integration

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/buildinfo"
	relpkg "github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// updateBound is how long the update tests wait for a rollout step: a
// download of a 30 MB binary, a restart and a check-in take a few seconds
// on loopback; the bound only stops a hung test.
const updateBound = 90 * time.Second

// releaseKit signs and publishes releases for the update tests with a
// release key of its own, kept in dir like an MSP keeps it offline.
type releaseKit struct {
	t     *testing.T
	dir   string
	admin *tech
}

// newReleaseKit makes a release key (unencrypted: the password's scrypt
// costs a gigabyte per use) and has admin's broker trust it.
func newReleaseKit(t *testing.T, base string, admin *tech) *releaseKit {
	t.Helper()
	k := &releaseKit{t: t, dir: filepath.Join(base, "release-keys"), admin: admin}
	admin.ok("releases", "keygen", "--out", k.dir, "--unencrypted")
	admin.ok("releases", "trust", filepath.Join(k.dir, relpkg.PublicKeyFile))
	return k
}

// platformFile is the release file name of this machine's sessiond.
func platformFile() string { return relpkg.BinaryName(runtime.GOOS + "/" + runtime.GOARCH) }

// buildSessiond builds the tree's sessiond stamped with version into
// dir/sessiond-GOOS-GOARCH: a release as an MSP would build it.
func buildSessiond(t *testing.T, dir, version string) string {
	t.Helper()
	out := filepath.Join(dir, platformFile())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out,
		"-ldflags", "-X github.com/readymesh/readymesh/peer/buildinfo.Version="+version,
		"github.com/readymesh/readymesh/sessiond/cmd/sessiond")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build sessiond %s: %v\n%s", version, err, b)
	}
	return out
}

// buildBroken builds the stand-in for a release that exits at start.
func buildBroken(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, platformFile()), "./testdata/brokenagent")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the broken agent: %v\n%s", err, b)
	}
}

// sign signs the release in dir as version and publishes it.
func (k *releaseKit) publish(dir, version string, extra ...string) wire.Release {
	k.t.Helper()
	args := append([]string{"releases", "sign", dir, "--key", filepath.Join(k.dir, relpkg.SecretKeyFile),
		"--version", version, "--notes", "update test " + version}, extra...)
	k.admin.ok(args...)
	var r struct {
		Release wire.Release `json:"release"`
	}
	out := k.admin.ok("releases", "publish", dir, "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Release.Version != version {
		k.t.Fatalf("releases publish %s --json: %v\n%s", version, err, out)
	}
	return r.Release
}

// bumpPatch returns v's release with its last number raised by n and any
// pre-release or build suffix dropped: a version newer than v.
func bumpPatch(t *testing.T, v string, n int) string {
	t.Helper()
	core, _, _ := strings.Cut(v, "-")
	core, _, _ = strings.Cut(core, "+")
	parts := strings.Split(core, ".")
	last, err := strconv.Atoi(parts[len(parts)-1])
	if err != nil {
		t.Fatalf("version %q: %v", v, err)
	}
	parts[len(parts)-1] = strconv.Itoa(last + n)
	out := strings.Join(parts, ".")
	if relpkg.CompareVersions(out, v) <= 0 {
		t.Fatalf("bumped %q to %q, which is not newer", v, out)
	}
	return out
}

// ownBinary gives a its own copy of the tree's sessiond to run, in a
// directory of its own, so an update replaces only a's.
func ownBinary(t *testing.T, a *agent) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(a.dir), "bin-"+filepath.Base(a.dir))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a.bin = filepath.Join(dir, "sessiond")
	if err := copyFileMode(bins.sessiond, a.bin, 0o755); err != nil {
		t.Fatal(err)
	}
}

func copyFileMode(from, to string, mode os.FileMode) error {
	raw, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, raw, mode)
}

// binaryVersion runs path's version command.
func binaryVersion(t *testing.T, path string) string {
	t.Helper()
	r := runCmd(t, cmdTimeout, nil, path, "version", "--json")
	var in buildinfo.Info
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &in) != nil {
		t.Fatalf("%s version --json: %v", path, r)
	}
	return in.Version
}

// waitBinary waits until path's version is want. The agent reports
// "updated" with the check-in that marks the trial healthy, a moment
// before its watchdog renames the new binary into place.
func waitBinary(t *testing.T, path, want string) {
	t.Helper()
	poll(t, 30*time.Second, path+" becomes "+want, func() (bool, string) {
		v := binaryVersion(t, path)
		return v == want, v
	})
}

// rollout starts a rollout and returns its ID.
func (k *releaseKit) rollout(args ...string) string {
	k.t.Helper()
	out := k.admin.ok(append([]string{"rollout", "start"}, append(args, "--json")...)...)
	var r wire.Rollout
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.ID == "" {
		k.t.Fatalf("rollout start --json: %v\n%s", err, out)
	}
	return r.ID
}

// status returns `meshctl rollout status ID --json`.
func (k *releaseKit) status(id string) wire.Rollout {
	k.t.Helper()
	out := k.admin.ok("rollout", "status", id, "--json")
	var r wire.Rollout
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		k.t.Fatalf("rollout status --json: %v\n%s", err, out)
	}
	return r
}

// step returns machine id's step in r.
func step(r wire.Rollout, id string) (wire.RolloutMachine, bool) {
	for _, m := range r.Machines {
		if m.MachineID == id {
			return m, true
		}
	}
	return wire.RolloutMachine{}, false
}

// waitStep polls the rollout until machine a reaches one of steps.
func (k *releaseKit) waitStep(id string, a *agent, steps ...string) wire.RolloutMachine {
	k.t.Helper()
	var got wire.RolloutMachine
	poll(k.t, updateBound, fmt.Sprintf("%s reaches %v in rollout %s", a.name, steps, id), func() (bool, string) {
		r := k.status(id)
		m, ok := step(r, a.id)
		got = m
		for _, s := range steps {
			if ok && m.Step == s {
				return true, ""
			}
		}
		return false, fmt.Sprintf("rollout %s: %+v", r.State, m)
	})
	return got
}

// TestAgentUpdates rolls a release out to four agents with the real
// binaries, on a two-broker cluster whose second broker pulls the
// release's binary from the first on demand: the canary wave (one agent)
// first, then the rest, one of which is offline and updates when it comes
// back. Each agent ends on the new version and keeps the old binary. A
// broken release is then rolled back by the canary's own agent, the
// rollout pauses with an alert, and no other agent is touched. An
// explicit rollback brings the old version back.
func TestAgentUpdates(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	current := binaryVersion(t, bins.sessiond)
	next, broken := bumpPatch(t, current, 1), bumpPatch(t, current, 2)
	nextDir, brokenDir, currentDir := filepath.Join(base, "rel-next"), filepath.Join(base, "rel-broken"), filepath.Join(base, "rel-current")
	for _, d := range []string{nextDir, brokenDir, currentDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	buildSessiond(t, nextDir, next)
	buildBroken(t, brokenDir)
	if err := copyFileMode(bins.sessiond, filepath.Join(currentDir, platformFile()), 0o755); err != nil {
		t.Fatal(err)
	}

	bs := startCluster(t, base, gossipKey(t, base, "gossip.key"), 2, 300*time.Millisecond)
	admin := bs[0].admin(base)
	kit := newReleaseKit(t, base, admin)
	admin.ok("clients", "create", "acme")
	// The agents enrol through eu-2 and bridge to it; releases are
	// published on eu-1, so eu-2 pulls each binary when an agent asks.
	tok := bs[1].admin(base).token("acme", 4, time.Hour).Token
	var agents []*agent
	for i := range 4 {
		a := enroll(t, base, tok, fmt.Sprintf("pc%d", i+1), "")
		ownBinary(t, a)
		a.start()
		agents = append(agents, a)
	}
	// Four agents collect their first snapshots at once (apt-get simulates
	// an upgrade for each): on a loaded 2-core machine that took 28 s.
	waitOnline(t, admin, 90*time.Second, agents...)
	late := agents[3]
	late.stop()

	kit.publish(nextDir, next)
	start := time.Now()
	id := kit.rollout(next, "--client", "acme", "--canary", "25%", "--health-window", "2m")
	r := kit.status(id)
	var canary *agent
	for _, a := range agents {
		if m, ok := step(r, a.id); ok && m.Wave == 0 {
			if canary != nil {
				t.Fatalf("two canaries in a 25%% wave of 4: %+v", r.Machines)
			}
			canary = a
		}
	}
	if canary == nil || canary == late {
		t.Fatalf("the canary wave should hold one online agent: %+v", r.Machines)
	}
	m := kit.waitStep(id, canary, wire.StepUpdated)
	t.Logf("canary %s updated after %v", canary.name, time.Since(start).Round(time.Millisecond))
	for _, a := range agents {
		if a == canary {
			continue
		}
		if s, _ := step(kit.status(id), a.id); s.Updated.Before(m.Updated) && s.Step != wire.StepWaiting {
			t.Errorf("%s moved to %s before the canary was healthy", a.name, s.Step)
		}
	}
	for _, a := range agents[:3] {
		if a != canary {
			kit.waitStep(id, a, wire.StepUpdated)
		}
	}
	t.Logf("the three online agents updated after %v", time.Since(start).Round(time.Millisecond))
	if s := kit.status(id); s.State == wire.RolloutDone {
		t.Fatalf("rollout done while %s is offline and not updated", late.name)
	}
	late.start()
	kit.waitStep(id, late, wire.StepUpdated)
	poll(t, updateBound, "the rollout is done", func() (bool, string) {
		s := kit.status(id)
		return s.State == wire.RolloutDone, s.State
	})
	for _, a := range agents {
		card := admin.show(a.full())
		if card.Readiness.AgentVersion != next || card.Readiness.LastUpdate == nil ||
			card.Readiness.LastUpdate.Outcome != wire.ReasonUpdated {
			t.Errorf("%s: card says agent %s, last update %+v; want %s, updated", a.name,
				card.Readiness.AgentVersion, card.Readiness.LastUpdate, next)
		}
		waitBinary(t, a.bin, next)
		if v := binaryVersion(t, a.bin+".previous"); v != current {
			t.Errorf("%s: the kept binary is %s, want %s", a.name, v, current)
		}
	}

	// A broken release: the canary's agent puts the previous binary
	// back, the rollout pauses with an alert, and nobody else is asked.
	kit.publish(brokenDir, broken)
	bid := kit.rollout(broken, "--client", "acme", "--canary", "25%", "--health-window", "2m")
	br := kit.status(bid)
	var bcanary *agent
	for _, a := range agents {
		if s, ok := step(br, a.id); ok && s.Wave == 0 {
			bcanary = a
		}
	}
	if bcanary == nil {
		t.Fatalf("no canary: %+v", br.Machines)
	}
	rb := kit.waitStep(bid, bcanary, wire.StepRolledBack, wire.StepFailed)
	if rb.Step != wire.StepRolledBack || !strings.Contains(rb.Detail, "status 2") {
		t.Errorf("canary %s: step %s %q; want rolled-back naming exit status 2", bcanary.name, rb.Step, rb.Detail)
	}
	poll(t, updateBound, "the broken rollout pauses with an alert", func() (bool, string) {
		s := kit.status(bid)
		return s.State == wire.RolloutPaused && hasAlert(t, admin, wire.AlertRolloutPaused), s.State + " " + s.PausedReason
	})
	card := admin.show(bcanary.full())
	if card.Readiness.AgentVersion != next || card.Readiness.LastUpdate == nil ||
		card.Readiness.LastUpdate.Outcome != wire.ReasonRolledBack {
		t.Errorf("broken canary %s: agent %s, last update %+v; want %s rolled back", bcanary.name,
			card.Readiness.AgentVersion, card.Readiness.LastUpdate, next)
	}
	if v := binaryVersion(t, bcanary.bin); v != next {
		t.Errorf("broken canary %s: its binary is %s after the rollback, want %s", bcanary.name, v, next)
	}
	for _, a := range agents {
		if a == bcanary {
			continue
		}
		if s, _ := step(kit.status(bid), a.id); s.Step != wire.StepWaiting {
			t.Errorf("%s outside the canary wave is %s, want waiting", a.name, s.Step)
		}
		if v := binaryVersion(t, a.bin); v != next {
			t.Errorf("%s outside the canary wave runs %s, want %s untouched", a.name, v, next)
		}
	}
	admin.ok("rollout", "abort", bid)

	// A downgrade is refused unless the rollout says it is a rollback.
	kit.publish(currentDir, current)
	did := kit.rollout(current, "--client", "acme", "--canary", "0%")
	d := kit.waitStep(did, agents[0], wire.StepFailed, wire.StepSkipped)
	if !strings.Contains(d.Detail, "older") && !strings.Contains(d.Detail, "rollback") {
		t.Errorf("downgrade without --rollback: step %s %q; want a refusal naming the downgrade", d.Step, d.Detail)
	}
	if v := binaryVersion(t, agents[0].bin); v != next {
		t.Errorf("a refused downgrade replaced the binary: %s", v)
	}
	admin.ok("rollout", "abort", did)
	rid := kit.rollout(current, "--client", "acme", "--canary", "0%", "--rollback")
	for _, a := range agents {
		kit.waitStep(rid, a, wire.StepUpdated)
		waitBinary(t, a.bin, current)
	}
}

// hasAlert reports whether an alert of kind is open.
func hasAlert(t *testing.T, c *tech, kind string) bool {
	var as []wire.Alert
	r := c.run("alerts", "--json")
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &as) != nil {
		return false
	}
	for _, a := range as {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

// TestAgentUpdateRefusals plays a broker whose store an attacker changed
// while it was stopped: a release signed by a key the agent does not
// trust, a manifest changed after it was signed, and a binary changed
// after it was published. The broker serves each as the rollout asks; the
// agent refuses each with its reason, and nothing on the machine is
// replaced.
func TestAgentUpdateRefusals(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	current := binaryVersion(t, bins.sessiond)
	next := bumpPatch(t, current, 1)
	nextDir := filepath.Join(base, "rel-next")
	if err := os.MkdirAll(nextDir, 0o755); err != nil {
		t.Fatal(err)
	}
	buildSessiond(t, nextDir, next)

	b := startBroker(t, base, "eu-1", 300*time.Millisecond)
	admin := b.admin(base)
	kit := newReleaseKit(t, base, admin)
	admin.ok("clients", "create", "acme")
	pc := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "pc", "")
	ownBinary(t, pc)
	pc.start()
	waitOnline(t, admin, 30*time.Second, pc)
	good := kit.publish(nextDir, next)

	// What the attacker writes: a release signed by its own key, the
	// good manifest with its notes changed, and the good binary with one
	// byte flipped.
	otherKeys := filepath.Join(base, "other-keys")
	admin.ok("releases", "keygen", "--out", otherKeys, "--unencrypted")
	otherDir := filepath.Join(base, "rel-other")
	if err := os.MkdirAll(otherDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFileMode(filepath.Join(nextDir, platformFile()), filepath.Join(otherDir, platformFile()), 0o755); err != nil {
		t.Fatal(err)
	}
	otherV, changedV := bumpPatch(t, current, 3), bumpPatch(t, current, 4)
	// The binary says which version it is, so the other key signs it as
	// that; the attacker stores it under a version of its own.
	admin.ok("releases", "sign", otherDir, "--key", filepath.Join(otherKeys, relpkg.SecretKeyFile), "--version", next)
	otherManifest, otherSig := readRelease(t, otherDir)
	goodManifest, goodSig := readRelease(t, nextDir)
	changed := []byte(strings.Replace(string(goodManifest), "update test", "update tesT", 1))
	if string(changed) == string(goodManifest) {
		t.Fatal("the manifest holds no notes to change")
	}
	bin := good.Binaries[0]
	b.stop()
	tamperStore(t, b, func(s *store.Store, db string) {
		for _, r := range []store.ReleaseRecord{
			{Version: otherV, Manifest: otherManifest, Signature: otherSig},
			{Version: changedV, Manifest: changed, Signature: goodSig},
		} {
			r.KeyID, r.PublishedBy, r.PublishedAt = good.KeyID, "admin", time.Now()
			if _, err := s.PublishRelease(r, good.Binaries, nil); err != nil {
				t.Fatalf("store release %s: %v", r.Version, err)
			}
		}
	})
	flipBlobByte(t, filepath.Join(b.dir, "broker.db"), bin.SHA256)
	b.restart()
	waitOnline(t, admin, 30*time.Second, pc)

	for _, tc := range []struct{ version, want string }{
		{otherV, "not signed by the pinned release key"},
		{changedV, "signature does not verify"},
		{next, "SHA-256 mismatch"},
	} {
		id := kit.rollout(tc.version, "--client", "acme", "--canary", "0%")
		m := kit.waitStep(id, pc, wire.StepFailed)
		if !strings.Contains(m.Detail, tc.want) {
			t.Errorf("release %s: the agent refused with %q; want %q", tc.version, m.Detail, tc.want)
		}
		t.Logf("release %s refused: %s", tc.version, m.Detail)
		if v := binaryVersion(t, pc.bin); v != current {
			t.Errorf("release %s replaced the binary: it is %s", tc.version, v)
		}
		for _, f := range []string{pc.bin + ".new", pc.bin + ".previous"} {
			if _, err := os.Stat(f); !os.IsNotExist(err) {
				t.Errorf("release %s left %s (%v)", tc.version, f, err)
			}
		}
		admin.ok("rollout", "abort", id)
	}
	parts, _ := filepath.Glob(filepath.Join(pc.dir, "update", "*.part"))
	if len(parts) != 0 {
		t.Errorf("refused downloads left %v", parts)
	}
}

// readRelease reads a signed release directory's manifest and signature.
func readRelease(t *testing.T, dir string) ([]byte, string) {
	t.Helper()
	m, err := os.ReadFile(filepath.Join(dir, relpkg.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.ReadFile(filepath.Join(dir, relpkg.SignatureFile))
	if err != nil {
		t.Fatal(err)
	}
	return m, string(s)
}

// tamperStore opens a stopped broker's store, as an attacker with its
// disk would, and lets f change it.
func tamperStore(t *testing.T, b *broker, f func(s *store.Store, db string)) {
	t.Helper()
	db := filepath.Join(b.dir, "broker.db")
	s, err := store.Open(store.Config{Path: db, Broker: b.name})
	if err != nil {
		t.Fatalf("open %s: %v", db, err)
	}
	f(s, db)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// flipBlobByte changes the first byte of a stored blob in place, below
// the store's checks: bucket "blobs", key sha256 and chunk 0.
func flipBlobByte(t *testing.T, db, sha string) {
	t.Helper()
	sum, err := hex.DecodeString(sha)
	if err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("blobs"))
		if bk == nil {
			return errors.New("no blobs bucket")
		}
		key := binary.BigEndian.AppendUint64(sum, 0)
		chunk := bk.Get(key)
		if len(chunk) == 0 {
			return fmt.Errorf("no chunk 0 of blob %s", sha)
		}
		c := append([]byte(nil), chunk...)
		c[len(c)/2] ^= 0xff
		return bk.Put(key, c)
	})
	if err != nil {
		t.Fatalf("tamper with blob %s: %v", sha, err)
	}
}
