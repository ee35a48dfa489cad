package density

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// BenchmarkRollout rolls one release out to 1,000 agents and measures the
// time until the rollout is done and what the broker sent per agent,
// against one `meshctl cp` of the same binary in the same run.
//
// The broker is the real binary on a copy of the enrolled fixture's store.
// An admin makes a release key (`meshctl releases keygen --unencrypted`),
// has the broker trust it, signs this tree's sessiond (built once per
// test process, not stripped: about 34 MB) as release rolloutTo and
// publishes it, all with the real meshctl. The agents are the package's
// simulated ones (own key, own QUIC bridge, own source address), which
// pin the fleet's key as the broker reports it (what an enrolment token
// made after `releases trust` carries), check in on rolloutFrom, and
// take update jobs as rollout_agent_test.go describes: verify, download
// with sessiond/update's Fetcher, stage (one in rolloutSample), answer,
// check in "updated". The rollout is `meshctl rollout start rolloutTo
// --client density --canary 1% --max-parallel 50 --health-window 15m`:
// the fleet's client rather than --all, which would take in the
// baseline's agent, a real sessiond that must not restart mid-run.
// max-parallel 50 is the rollout's default; the broker's own bound on
// downloads served at once (32 by default) queues the rest.
//
// It reports:
//
//	s/rollout            meshctl rollout start to the rollout's state "done", polled every 200 ms
//	agents/s             agents / s/rollout
//	egress-B/agent       the broker's readymesh_release_blob_bytes_total{flow="to_agent"} growth / agents:
//	                     blob bytes written to agents' streams (no framing)
//	wire-B/agent         UDP payload bytes (QUIC packets: headers, acks, retransmissions) each sampled
//	                     agent (one in rolloutSample) received from the broker during the rollout,
//	                     mean; the broker's real egress per agent, IP and UDP headers aside
//	egress-x-binary      wire-B/agent / the binary's size: 1.0 would be the bytes alone
//	cp-s                 one `meshctl cp --transport quic` of the binary to one sessiond, process start to exit
//	cp-broker-B          the broker's file-byte counters (blobs to agents + relayed session bytes)
//	                     during that copy: direct QUIC puts none of the file through the broker
//	rollout-x-serial-cp  s/rollout / (agents × cp-s): the rollout against copying the binary to each
//	                     agent by hand, one at a time; below 1 the rollout is faster
//	rollout-MB/s         blob bytes to all agents / s/rollout: the broker's aggregate rate
//	cp-MB/s              the binary's size / cp-s: one direct copy's rate, setup included
//	broker-peak-rss-MiB  the broker's VmHWM over the rollout (reset just before it; the store's
//	                     memory-mapped pages count)
//	broker-cpu-s         CPU seconds the broker spent over the rollout
//
// This process plays 1,000 agents on the same machine: it decrypts every
// byte the broker encrypts, and writes, fsyncs and reads back every
// download to hash it (the staging agents copy and hash it once more),
// so on a small machine s/rollout is bound by this process as much as by
// the broker; broker-cpu-s is what the broker itself spent. ns/op is the whole run (enrolment aside) and
// B/op what this process allocated, neither a rollout figure.
func BenchmarkRollout(b *testing.B) {
	fx := enrolled(b, rolloutAgents)
	bin, err := sessiondBin()
	if err != nil {
		b.Fatal(err)
	}
	var r rolloutResult
	done := false
	for b.Loop() {
		if done {
			continue
		}
		if r, err = rolloutOnce(b, fx, rolloutAgents, bin, rolloutSample); err != nil {
			b.Fatal(err)
		}
		done = true
	}
	b.Log(r)
	n := float64(r.n)
	b.ReportMetric(r.took.Seconds(), "s/rollout")
	b.ReportMetric(n/r.took.Seconds(), "agents/s")
	b.ReportMetric(r.blob/n, "egress-B/agent")
	b.ReportMetric(r.wirePer(), "wire-B/agent")
	b.ReportMetric(r.wirePer()/float64(r.size), "egress-x-binary")
	b.ReportMetric(r.cp.took.Seconds(), "cp-s")
	b.ReportMetric(r.cp.brokerBytes, "cp-broker-B")
	b.ReportMetric(r.took.Seconds()/(n*r.cp.took.Seconds()), "rollout-x-serial-cp")
	b.ReportMetric(r.blob/r.took.Seconds()/1e6, "rollout-MB/s")
	b.ReportMetric(float64(r.size)/r.cp.took.Seconds()/1e6, "cp-MB/s")
	b.ReportMetric(r.peakRSS/(1<<20), "broker-peak-rss-MiB")
	b.ReportMetric(r.cpu, "broker-cpu-s")
}

// TestRolloutHarness runs the rollout and its baseline small (20 agents,
// a 4 MiB stand-in binary), so `make test` keeps the harness working:
// every agent updated, as the agents and the rollout both say; the broker
// counted every agent's blob; the sampled agents received at least the
// binary each; the copy went direct and the broker carried none of it;
// and no file descriptor leaked.
func TestRolloutHarness(t *testing.T) {
	const n, sample, size = 20, 4, 4 << 20
	fx := enrolled(t, n)
	bin := filepath.Join(t.TempDir(), "stand-in")
	if err := randomFile(bin, size); err != nil {
		t.Fatal(err)
	}
	fds := openFDs(t)
	r, err := rolloutOnce(t, fx, n, bin, sample)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.blob < n*size {
		t.Errorf("the broker counted %.0f blob bytes to agents, want at least %d × %d", r.blob, n, size)
	}
	if r.sampled != n/sample || r.staged != int64(n/sample) {
		t.Errorf("%d agents sampled and %d staged, want %d each", r.sampled, r.staged, n/sample)
	}
	if r.wirePer() < size {
		t.Errorf("sampled agents received %.0f bytes each, less than the %d-byte binary", r.wirePer(), size)
	}
	if !strings.HasPrefix(r.cp.path, wire.PathDirectQUIC) || r.cp.brokerBytes != 0 {
		t.Errorf("meshctl cp went over %q with %.0f file bytes through the broker; want direct QUIC and none", r.cp.path, r.cp.brokerBytes)
	}
	checkFDs(t, fds, "the rollout")
}

// Bounds and settings of the rollout benchmark.
const (
	rolloutAgents   = 1000
	rolloutSample   = 25 // one agent in this many stages the binary and counts its bytes
	rolloutParallel = 50
	rolloutLimit    = 10 * time.Minute // for the rollout to be done
	rolloutBound    = 20 * time.Minute // the whole run
	rolloutFrom     = "0.0.1"          // the agents' version
	rolloutTo       = "0.0.2"          // the release's
)

// rolloutResult is one rollout and its baseline copy.
type rolloutResult struct {
	n       int
	size    int64         // the release binary's
	took    time.Duration // rollout start to done
	blob    float64       // blob bytes the broker sent agents
	wire    float64       // UDP payload bytes the sampled agents received
	pkts    float64       // and datagrams
	sampled int64         // agents counting what they receive
	staged  int64         // agents that staged the binary
	// Job requests for jobs the agents had already taken: while they ran,
	// and after.
	askedRunning, askedDone int64

	rssBefore, peakRSS float64 // the broker's, over the rollout
	cpu                float64 // CPU seconds the broker spent on it
	cp                 cpResult
}

// wirePer is the mean bytes a sampled agent received.
func (r rolloutResult) wirePer() float64 {
	if r.sampled == 0 {
		return 0
	}
	return r.wire / float64(r.sampled)
}

func (r rolloutResult) String() string {
	return fmt.Sprintf("%d agents, %.1f MB binary: done in %s; blob %.1f MB/agent, "+
		"wire %.1f MB/agent (%.0f datagrams, %d sampled, %d staged); jobs asked again %d times while running, %d after; "+
		"broker RSS %.0f MB before, peak %.0f MB, %.1f CPU s; meshctl cp %s over %s, %.0f B through the broker",
		r.n, float64(r.size)/1e6, r.took.Round(time.Millisecond), r.blob/float64(r.n)/1e6, r.wirePer()/1e6,
		r.pkts/max(1, float64(r.sampled)), r.sampled, r.staged, r.askedRunning, r.askedDone, r.rssBefore/1e6, r.peakRSS/1e6, r.cpu,
		r.cp.took.Round(time.Millisecond), r.cp.path, r.cp.brokerBytes)
}

// rolloutOnce starts a broker on a copy of fx's store, publishes bin as a
// release, copies bin once to a real sessiond (the baseline), brings n of
// fx's agents up, rolls the release out to them and measures it. The
// broker, the agents and every file are gone when the test ends.
func rolloutOnce(tb testing.TB, fx *fixture, n int, bin string, sample int) (rolloutResult, error) {
	st, err := os.Stat(bin)
	if err != nil {
		return rolloutResult{}, err
	}
	r := rolloutResult{n: n, size: st.Size()}
	dir := tb.TempDir()
	needRoom(tb, dir, r.size)
	if err := fx.copyTemplate(filepath.Join(dir, "broker")); err != nil {
		return r, err
	}
	b, err := startBroker(tb, filepath.Join(dir, "broker"))
	if err != nil {
		return r, err
	}
	var fl *fleet
	defer func() {
		// Killed: its store copy is thrown away.
		b.kill()
		if fl != nil {
			fl.close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), rolloutBound)
	defer cancel()
	home := filepath.Join(dir, "admin-home")
	c, err := tech.Login(ctx, home, "", filepath.Join(dir, "broker", "admin.credential"))
	if err != nil {
		return r, err
	}
	defer c.Close()
	pinned, err := publishRelease(ctx, c, home, dir, bin, rolloutTo)
	if err != nil {
		return r, err
	}
	u := &updater{broker: b.quic.ID, pinned: pinned, from: rolloutFrom, dir: filepath.Join(dir, "agents"), every: sample}
	var cs counters
	if fl, r.sampled, err = updatingFleet(ctx, fx.keys[:n], b, u, &cs); err != nil {
		return r, err
	}
	if r.cp, err = copyBaseline(ctx, tb, b, c, home, dir, bin); err != nil {
		return r, err
	}
	return r, measureRollout(ctx, b, c, home, u, &cs, &r)
}

// updatingFleet brings keys' agents up to b, the sampled ones counting
// what they receive into cs, makes them answer update jobs through u and
// has each check in on u's version. It returns how many are sampled.
func updatingFleet(ctx context.Context, keys []crypto.PrivKey, b *brokerProc, u *updater, cs *counters) (*fleet, int64, error) {
	var sampled int64
	fl, err := connectFleetWith(ctx, keys, b.quic, func(i int, a *agent) {
		if u.sampled(i) {
			a.wrap = cs.wrap
			sampled++
		}
	})
	if err != nil {
		return nil, 0, err
	}
	u.serve(fl.ctx, fl)
	if err := checkInVersion(ctx, fl, b.quic.ID, u.from); err != nil {
		fl.close()
		return nil, 0, err
	}
	return fl, sampled, nil
}

// measureRollout starts the rollout and waits until it is done, reading
// the broker's counters and memory around it into r.
func measureRollout(ctx context.Context, b *brokerProc, c *tech.Client, home string, u *updater, cs *counters, r *rolloutResult) error {
	pid := b.cmd.Process.Pid
	if err := resetPeak(pid); err != nil {
		return err
	}
	var err error
	if r.rssBefore, err = statusBytes(pid, "VmRSS"); err != nil {
		return err
	}
	blob0, err := b.probe.series(ctx, blobToAgents)
	if err != nil {
		return err
	}
	wire0, pkts0 := cs.read()
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		return err
	}
	start := time.Now()
	out, err := meshctl(ctx, home, "rollout", "start", rolloutTo, "--client", "density", "--canary", "1%",
		"--max-parallel", strconv.Itoa(rolloutParallel), "--health-window", "15m", "--json")
	if err != nil {
		return err
	}
	var ro wire.Rollout
	if err := json.Unmarshal([]byte(out), &ro); err != nil || ro.ID == "" {
		return fmt.Errorf("rollout start --json: %v: %s", err, out)
	}
	if err := waitDone(ctx, c, ro.ID, u); err != nil {
		return err
	}
	r.took = time.Since(start)
	blob1, err := b.probe.series(ctx, blobToAgents)
	if err != nil {
		return err
	}
	wire1, pkts1 := cs.read()
	cpu1, err := cpuSeconds(pid)
	if err != nil {
		return err
	}
	if r.peakRSS, err = statusBytes(pid, "VmHWM"); err != nil {
		return err
	}
	r.blob, r.wire, r.pkts, r.cpu, r.staged = blob1-blob0, float64(wire1-wire0), float64(pkts1-pkts0), cpu1-cpu0, u.staged.Load()
	r.askedRunning, r.askedDone = u.askedRunning.Load(), u.askedDone.Load()
	return checkUpdated(ctx, c, ro.ID, u, r.n)
}

// waitDone polls the rollout every 200 ms until it is done, for at most
// rolloutLimit; a pause, an abort or an agent's failure ends it early.
func waitDone(ctx context.Context, c *tech.Client, id string, u *updater) error {
	var last wire.Rollout
	var pollErr error
	err := waitForEvery(ctx, rolloutLimit, 200*time.Millisecond, func() bool {
		var rs []wire.Rollout
		if pollErr = c.Do(ctx, wire.OpRolloutList, nil, &rs); pollErr != nil {
			return true
		}
		for _, r := range rs {
			if r.ID == id {
				last = r
			}
		}
		return last.State != wire.RolloutCanary && last.State != wire.RolloutRolling || u.err() != nil
	})
	switch {
	case err != nil:
		return fmt.Errorf("rollout %s is %s %v: %w; agents: %v", id, last.State, last.Counts, err, u.err())
	case pollErr != nil:
		return fmt.Errorf("rollout list: %w", pollErr)
	case u.err() != nil:
		return u.err()
	case last.State != wire.RolloutDone:
		return fmt.Errorf("rollout %s ended %s (%s): %v", id, last.State, last.PausedReason, last.Counts)
	}
	return nil
}

// checkUpdated checks that every agent says it updated and that the
// rollout has every machine updated.
func checkUpdated(ctx context.Context, c *tech.Client, id string, u *updater, n int) error {
	if err := u.err(); err != nil {
		return err
	}
	if got := u.updated.Load(); got != int64(n) {
		return fmt.Errorf("%d of %d agents checked in updated", got, n)
	}
	var ro wire.Rollout
	if err := c.Do(ctx, wire.OpRolloutStatus, wire.RolloutIDArgs{ID: id}, &ro); err != nil {
		return err
	}
	if ro.Counts[wire.StepUpdated] != n || len(ro.Machines) != n {
		return fmt.Errorf("rollout %s: %v over %d machines; want all %d updated", id, ro.Counts, len(ro.Machines), n)
	}
	return nil
}

// publishRelease makes a release key in dir, has the broker trust it,
// signs bin as this platform's sessiond of version and publishes it, with
// meshctl as the technician whose login is in home. It returns the
// fleet's release key as the broker reports it: what agents pin.
func publishRelease(ctx context.Context, c *tech.Client, home, dir, bin, version string) (string, error) {
	keys, rel := filepath.Join(dir, "release-keys"), filepath.Join(dir, "release")
	if err := os.Mkdir(rel, 0o755); err != nil {
		return "", err
	}
	if err := copyFile(bin, filepath.Join(rel, release.BinaryName(runtime.GOOS+"/"+runtime.GOARCH))); err != nil {
		return "", err
	}
	for _, args := range [][]string{
		{"releases", "keygen", "--out", keys, "--unencrypted"},
		{"releases", "trust", filepath.Join(keys, release.PublicKeyFile)},
		{"releases", "sign", rel, "--key", filepath.Join(keys, release.SecretKeyFile), "--version", version},
		{"releases", "publish", rel},
	} {
		if _, err := meshctl(ctx, home, args...); err != nil {
			return "", err
		}
	}
	var key wire.ReleaseKey
	if err := c.Do(ctx, wire.OpReleaseKey, nil, &key); err != nil {
		return "", err
	}
	if key.PublicKey == "" {
		return "", errors.New("the broker reports no release key after releases trust")
	}
	return key.PublicKey, nil
}

// needRoom skips tb when dir's file system lacks room for the downloads
// in flight (two copies each for the agents that stage, one for the
// rest) and the release's own copies (the release directory, the
// broker's store, the baseline's copy).
func needRoom(tb testing.TB, dir string, size int64) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		tb.Skipf("cannot tell the room left in %s: %v", dir, err)
	}
	need, free := (2*rolloutParallel+4)*size, int64(fs.Bavail)*fs.Bsize
	if free < need {
		tb.Skipf("%d MB free in %s; a rollout of a %d MB binary needs %d MB for the downloads in flight",
			free>>20, dir, size>>20, need>>20)
	}
}

// resetPeak resets the peak RSS (VmHWM) of process pid to its RSS now.
func resetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset the broker's peak RSS: %w", err)
	}
	return nil
}

// waitForEvery polls cond every interval for at most limit.
func waitForEvery(ctx context.Context, limit, every time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
	return nil
}

// randomFile writes size random bytes to path: a stand-in binary.
func randomFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
