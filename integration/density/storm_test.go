package density

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// Bounds of the reconnect storm.
const (
	stormLimit       = 3 * time.Minute  // from the restart to every agent back
	stormDialTimeout = 10 * time.Second // per try, as sessiond's presence dial
	stormAttempts    = 40               // tries per agent before the run fails
	idleSamples      = 11               // technician calls before the storm
	maxStormSamples  = 500              // technician calls during it, at most
	techCallLimit    = 30 * time.Second // one technician call
	techEvery        = time.Second      // a technician's pace: one call started a second at most
)

// stormResult is one reconnect storm: n agents connected and idle on a
// broker that is killed and restarted on the same store and ports, after
// which every agent comes back at once.
type stormResult struct {
	n int

	steady   settled       // the first broker, n agents online and idle
	allBack  time.Duration // from the restarted broker's ready line to n online
	peakRSS  float64       // the restarted broker's VmHWM when n were online
	after    settled       // the restarted broker, n online again, settled
	stormCPU float64       // CPU seconds the restarted broker spent until n were online
	herdCPU  float64       // CPU seconds this process, playing the agents, spent meanwhile

	idle, storm []time.Duration // technician `machines` latencies
	techFailed  int             // technician calls that failed during the storm

	tries  int64         // agents' dial attempts during the storm, the first ones included
	spread time.Duration // the reconnect window the first broker gave the last agent to connect
	fails  *failTally
}

// failTally counts the agents' failed tries by how they failed, and the
// time each kind took: what the broker's admission control did to them.
type failTally struct {
	mu    sync.Mutex
	count map[string]int           // by kind
	took  map[string]time.Duration // by kind, summed

	examples map[string]string // one error message of each kind
}

func (t *failTally) add(err error, took time.Duration) {
	kind := "other"
	switch msg := err.Error(); {
	case strings.Contains(msg, "CONNECTION_REFUSED"):
		kind = "refused"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "deadline exceeded") || strings.Contains(msg, "timeout"):
		kind = "timed out"
	case strings.Contains(msg, "resource limit"):
		kind = "resource limit"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.count == nil {
		t.count, t.took = map[string]int{}, map[string]time.Duration{}
		t.examples = map[string]string{}
	}
	t.count[kind]++
	t.took[kind] += took
	if _, ok := t.examples[kind]; !ok {
		t.examples[kind] = err.Error()
	}
}

func (t *failTally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var parts []string
	for kind, n := range t.count {
		parts = append(parts, fmt.Sprintf("%s %d (%.1f s each; e.g. %.160s)", kind, n, t.took[kind].Seconds()/float64(n), t.examples[kind]))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func (r stormResult) String() string {
	return fmt.Sprintf("n=%d all back in %s (window %s, %.2f tries/agent, broker CPU %.1f s, agents' CPU %.1f s); broker RSS steady %.1f MB, peak %.1f MB (%.2f×), settled after %.1f MB; "+
		"technician machines: idle median %s of %d, storm median %s max %s of %d (%d failed)",
		r.n, r.allBack.Round(time.Millisecond), r.spread, float64(r.tries)/float64(r.n), r.stormCPU, r.herdCPU,
		r.steady.RSS/1e6, r.peakRSS/1e6, r.peakRSS/r.steady.RSS, r.after.RSS/1e6,
		median(r.idle).Round(time.Millisecond), len(r.idle),
		median(r.storm).Round(time.Millisecond), slices.Max(append([]time.Duration{0}, r.storm...)).Round(time.Millisecond),
		len(r.storm), r.techFailed) + "; failed tries: " + r.fails.String()
}

// BenchmarkReconnectStorm brings N idle agents up on a broker (64 dials
// at a time, as a fleet arrives over a day), kills the broker with
// SIGKILL, restarts it on the same store and ports, and releases every
// agent at once the moment it is ready, each retrying as sessiond does
// (a 10 s dial timeout, then full-jitter backoff from 500 ms to 30 s).
// Throughout, a technician runs `machines` in a loop, each call a fresh
// connection as meshctl makes one.
//
// It reports, all from the same run:
//
//	s-all-back           restart's ready line to N counted online
//	rss-peak-x-steady    restarted broker's peak RSS (VmHWM) / the first broker's settled RSS with N idle
//	tech-x-idle          median technician latency during the storm / median before it
//	tech-max-x-idle      slowest technician call during the storm / median before it
//	tries/agent          dial attempts per agent during the storm
//
// plus the raw figures they come from. The aims are all back within 30 s,
// peak RSS at most 1.5× steady and technician latency at most 3× idle.
func BenchmarkReconnectStorm(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			fx := enrolled(b, n)
			var r stormResult
			done := false
			for b.Loop() {
				if done {
					continue
				}
				var err error
				if r, err = stormOnce(b, fx, n); err != nil {
					b.Fatal(err)
				}
				done = true
			}
			b.Log(r)
			idle := median(r.idle).Seconds()
			b.ReportMetric(r.allBack.Seconds(), "s-all-back")
			b.ReportMetric(r.peakRSS/r.steady.RSS, "rss-peak-x-steady")
			b.ReportMetric(median(r.storm).Seconds()/idle, "tech-x-idle")
			b.ReportMetric(slices.Max(r.storm).Seconds()/idle, "tech-max-x-idle")
			b.ReportMetric(float64(r.tries)/float64(n), "tries/agent")
			b.ReportMetric(r.steady.RSS/1e6, "steady-rss-MB")
			b.ReportMetric(r.peakRSS/1e6, "peak-rss-MB")
			b.ReportMetric(idle*1e3, "tech-idle-ms")
			b.ReportMetric(median(r.storm).Seconds()*1e3, "tech-storm-ms")
			b.ReportMetric(r.stormCPU, "broker-cpu-s")
			b.ReportMetric(float64(r.techFailed), "tech-failed")
		})
	}
}

// stormOnce runs one storm of n of fx's agents; the brokers and agents are
// gone when it returns.
func stormOnce(tb testing.TB, fx *fixture, n int) (stormResult, error) {
	r := stormResult{n: n, fails: &failTally{}}
	dir := filepath.Join(tb.TempDir(), "broker")
	if err := fx.copyTemplate(dir); err != nil {
		return r, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), measureLimit+stormLimit)
	defer cancel()

	first, err := startBroker(tb, dir)
	if err != nil {
		return r, err
	}
	defer first.kill()
	listen, err := listenSpec(first.info)
	if err != nil {
		return r, err
	}
	home := filepath.Join(tb.TempDir(), "tech")
	c, err := tech.Login(ctx, home, "", filepath.Join(dir, "admin.credential"))
	if err != nil {
		return r, fmt.Errorf("technician login: %w", err)
	}
	c.Close()

	fl, err := connectFleet(ctx, fx.keys[:n], first.quic)
	if err != nil {
		return r, err
	}
	defer func() { fl.close() }()
	if err := first.probe.waitOnline(ctx, n, onlineLimit); err != nil {
		return r, err
	}
	if r.steady, err = first.probe.settle(ctx); err != nil {
		return r, fmt.Errorf("steady: %w", err)
	}
	for range idleSamples {
		d, err := machinesCall(ctx, home, n)
		if err != nil {
			return r, fmt.Errorf("technician, idle: %w", err)
		}
		r.idle = append(r.idle, d)
		time.Sleep(techEvery - min(d, techEvery))
	}

	r.spread = fl.agents[n-1].spread
	// The agents notice at once (sessiond's ack watch gives up within
	// seconds) and keep their hosts, as sessiond does.
	first.kill()
	killed := time.Now()
	fl.detach(first.quic.ID)
	herd := fl
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	second, err := startBrokerOn(tb, dir, listen)
	if err != nil {
		return r, fmt.Errorf("restart: %w", err)
	}
	defer second.kill()
	start := time.Now()
	cpu0, err := cpuSeconds(second.cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	herd0, err := cpuSeconds(os.Getpid())
	if err != nil {
		return r, err
	}

	profDone := second.cpuProfile(ctx, tb, n)
	defer func() { <-profDone }()
	var tries atomic.Int64
	agentErr := make(chan error, 1)
	var wg sync.WaitGroup
	for _, a := range herd.agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rd, err := a.rejoin(sctx, second.quic, killed, &tries, r.fails)
			if err != nil {
				select {
				case agentErr <- fmt.Errorf("agent %s: %w", a.id, err):
				default:
				}
				return
			}
			herd.wg.Add(1)
			go herd.readAcks(a, rd)
		}()
	}
	defer wg.Wait() // before fl.close, which the earlier defer runs after
	stopTech := make(chan struct{})
	techDone := make(chan struct{})
	go func() {
		defer close(techDone)
		for len(r.storm)+r.techFailed < maxStormSamples {
			select {
			case <-stopTech:
				return
			default:
			}
			d, err := machinesCall(ctx, home, n)
			if err != nil {
				r.techFailed++
				tb.Logf("technician during the storm: %v", err)
			} else {
				r.storm = append(r.storm, d)
			}
			select {
			case <-stopTech:
				return
			case <-time.After(techEvery - min(d, techEvery)):
			}
		}
	}()
	online := make(chan error, 1)
	go func() { online <- second.probe.waitOnline(ctx, n, stormLimit) }()
	select {
	case err = <-online:
	case err = <-agentErr:
	}
	r.allBack = time.Since(start)
	close(stopTech)
	<-techDone
	if err != nil {
		scancel() // agents still retrying give up at once
		return r, err
	}
	if r.peakRSS, err = statusBytes(second.cmd.Process.Pid, "VmHWM"); err != nil {
		return r, err
	}
	cpu1, err := cpuSeconds(second.cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	r.stormCPU = cpu1 - cpu0
	herd1, err := cpuSeconds(os.Getpid())
	if err != nil {
		return r, err
	}
	r.herdCPU = herd1 - herd0
	r.tries = tries.Load()
	if len(r.storm) == 0 {
		return r, fmt.Errorf("no technician call completed during the storm (%d failed)", r.techFailed)
	}
	if r.after, err = second.probe.settle(ctx); err != nil {
		return r, fmt.Errorf("after: %w", err)
	}
	return r, nil
}

// rejoin brings a back to broker as sessiond's presence loop does after
// its bridge dropped at lost: a first dial at a uniform draw from the
// reconnect window the broker gave in its hello, counted from lost (a
// draw that fell while the broker was down dials at once); on the same
// host, each dial with a 10 s timeout that skips libp2p's own dial
// backoff; after a failure a full-jitter backoff with sessiond's default
// bounds.
func (a *agent) rejoin(ctx context.Context, broker peer.AddrInfo, lost time.Time, tries *atomic.Int64, fails *failTally) (*wire.Reader, error) {
	var bo bridge.Backoff
	var err error
	if a.spread > 0 {
		at := lost.Add(time.Duration(rand.Int64N(int64(a.spread) + 1)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Until(at)):
		}
	}
	for try := 0; try < stormAttempts; try++ {
		tries.Add(1)
		dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "reconnect"), stormDialTimeout)
		var r *wire.Reader
		began := time.Now()
		r, err = a.up(dctx, broker)
		cancel()
		if err == nil {
			return r, nil
		}
		fails.add(err, time.Since(began))
		a.h.Network().ClosePeer(broker.ID)
		a.h.dropSockets()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(bo.Next()):
		}
	}
	return nil, fmt.Errorf("%d tries: %w", stormAttempts, err)
}

// machinesCall runs `meshctl machines --json` as the technician whose
// login is in home, as its own process (a technician's meshctl is not
// part of the agents' process, nor competes with it for threads), and
// returns how long it took, process start included.
func machinesCall(ctx context.Context, home string, n int) (time.Duration, error) {
	bin, err := meshctlBin()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, techCallLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "machines", "--json")
	cmd.Env = append(os.Environ(), "READYMESH_HOME="+home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("meshctl machines: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var cards []wire.Card
	if err := json.Unmarshal(out, &cards); err != nil {
		return 0, fmt.Errorf("meshctl machines --json: %w", err)
	}
	if len(cards) != n {
		return 0, fmt.Errorf("meshctl machines listed %d, want %d", len(cards), n)
	}
	return took, nil
}

// listenSpec returns the --listen value that makes a restarted broker
// listen where info says this one does: its multiaddrs without the /p2p
// part, comma-separated.
func listenSpec(info wire.BrokerInfo) (string, error) {
	var out []string
	for _, a := range info.Addrs {
		a, _, _ = strings.Cut(a, "/p2p/")
		out = append(out, a)
	}
	if len(out) == 0 {
		return "", errors.New("broker.json lists no addresses")
	}
	return strings.Join(out, ","), nil
}

// statusBytes reads a "kB" field of /proc/PID/status, in bytes.
func statusBytes(pid int, field string) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, field, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// cpuSeconds reads the user and system CPU time of process pid from
// /proc/PID/stat (in clock ticks of 1/100 s, Linux's USER_HZ).
func cpuSeconds(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	_, rest, ok := strings.Cut(string(raw), ") ")
	if !ok {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return (utime + stime) / 100, nil
}

// stormProfile is how long the storm's CPU profile runs, from the restart.
const stormProfile = 30 * time.Second

// cpuProfile saves the broker's CPU profile of the first stormProfile of
// the storm to cpu-storm-agents=N.pb.gz in profileEnv's directory, when
// profiles are on. The returned channel is closed when it is done.
func (b *brokerProc) cpuProfile(ctx context.Context, tb testing.TB, n int) <-chan struct{} {
	done := make(chan struct{})
	dir := os.Getenv(profileEnv)
	if dir == "" || b.pprof == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		p := &probe{base: b.pprof.base, hc: &http.Client{Timeout: stormProfile + 30*time.Second}}
		file := filepath.Join(dir, fmt.Sprintf("cpu-storm-agents=%d.pb.gz", n))
		path := fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(stormProfile.Seconds()))
		if err := p.save(ctx, path, file); err != nil {
			tb.Logf("storm CPU profile: %v", err)
		}
	}()
	return done
}

// TestStormHarness runs the reconnect storm small, so `make test` keeps
// its harness working: every agent must come back to the restarted broker
// on the same ports, the technician's calls must succeed before and during
// it, and the harness must give back the descriptors it opened.
func TestStormHarness(t *testing.T) {
	const n = 50
	fx := enrolled(t, n)
	fds := openFDs(t)
	r, err := stormOnce(t, fx, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.tries < n {
		t.Errorf("%d dial tries for %d agents", r.tries, n)
	}
	if r.spread <= 0 {
		t.Errorf("the broker gave no reconnect window in its hello")
	}
	if len(r.idle) != idleSamples || len(r.storm) == 0 || r.techFailed != 0 {
		t.Errorf("technician calls: %d idle, %d during the storm, %d failed", len(r.idle), len(r.storm), r.techFailed)
	}
	if r.peakRSS <= 0 || r.steady.RSS <= 0 {
		t.Errorf("no RSS read: peak %.0f, steady %.0f", r.peakRSS, r.steady.RSS)
	}
	checkFDs(t, fds, "the storm")
}
