package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// failoverAgents is how many agents BenchmarkFailoverDefaults runs: enough
// that the slowest one shows how the heartbeat phase spreads them, few
// enough for a two-core machine.
const failoverAgents = 4

// BenchmarkFailoverDefaults measures failover at the default settings
// with the real binaries: three brokers form a cluster (the lan gossip
// profile, the 5 s heartbeat), then agents enrol at the first and bridge
// there, knowing the other two from the presence hello; the first broker
// is killed with SIGKILL. One op is one such kill on a fresh cluster, and
// it ends when every agent is online on a survivor, by the survivors'
// own log timestamps. It reports the seconds from the kill to the last
// agent online elsewhere (s-to-all, and its largest over the ops,
// s-to-all-max) and to the first (s-to-first). Run it with
// -benchtime=5x: each op sets up its own cluster, untimed, and kills at
// its own point of the 5 s heartbeat interval.
func BenchmarkFailoverDefaults(b *testing.B) {
	needBinaries(b)
	var all, first, worst float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f := newFailoverCluster(b, fmt.Sprintf("op%d", i))
		// The agents bridged a moment ago, all at once: kill at another
		// point of their heartbeat interval in each op, so -benchtime=5x
		// covers the interval (one second apart) rather than its start.
		time.Sleep(time.Duration(i%5) * time.Second)
		b.StartTimer()
		last, earliest := f.killHome()
		b.StopTimer()
		f.stop()
		all += last.Seconds()
		first += earliest.Seconds()
		worst = max(worst, last.Seconds())
		b.Logf("op %d: first agent online elsewhere %.2fs after the kill, last %.2fs", i, earliest.Seconds(), last.Seconds())
	}
	b.ReportMetric(all/float64(b.N), "s-to-all")
	b.ReportMetric(first/float64(b.N), "s-to-first")
	b.ReportMetric(worst, "s-to-all-max")
}

// failoverCluster is one op of BenchmarkFailoverDefaults: three brokers,
// the agents bridged to the first.
type failoverCluster struct {
	tb      testing.TB
	brokers []*broker
	agents  []*agent
}

// newFailoverCluster starts the cluster and the agents at the defaults,
// and returns once every agent is online on the first broker.
func newFailoverCluster(tb testing.TB, name string) *failoverCluster {
	tb.Helper()
	base := filepath.Join(testDir(tb), name)
	if err := os.MkdirAll(base, 0o700); err != nil {
		tb.Fatal(err)
	}
	key := filepath.Join(base, "gossip.key")
	if r := runCmd(tb, cmdTimeout, nil, bins.broker, "gossip-key", key); r.err != nil {
		tb.Fatalf("broker gossip-key: %v", r)
	}
	args := []string{"--gossip", "127.0.0.1:0", "--gossip-key-file", key, "--region", "eu"}
	f := &failoverCluster{tb: tb}
	home := startBrokerArgs(tb, base, "eu-1", 0, args...)
	f.brokers = []*broker{home,
		startBrokerArgs(tb, base, "eu-2", 0, append(args, "--join", home.info.Gossip)...),
		startBrokerArgs(tb, base, "eu-3", 0, append(args, "--join", home.info.Gossip)...)}
	admin, watcher := home.admin(base), f.brokers[1].admin(base)
	poll(tb, 30*time.Second, "three alive brokers", func() (bool, string) {
		out := admin.ok("brokers", "--json")
		return strings.Count(out, `"state": "alive"`) == 3, out
	})
	admin.ok("clients", "create", "acme")
	tok := admin.token("acme", failoverAgents, time.Hour).Token
	for n := range failoverAgents {
		a := enroll(tb, base, tok, fmt.Sprintf("pc-%d", n+1), "windows-ready.json")
		// The defaults: no --reconnect-max, unlike the tests' agents.
		a.runs++
		a.proc = startProc(tb, fmt.Sprintf("agent %s", a.name), nil, bins.sessiond, "run", "--state", a.dir,
			"--interval", "1h", "--session-addr", "127.0.0.1:0", "--inventory", a.fixture)
		f.agents = append(f.agents, a)
	}
	cards := waitOnline(tb, watcher, 30*time.Second, f.agents...)
	for _, a := range f.agents {
		if c, _ := cardOf(cards, a.id); c.Reachability.Broker != home.name {
			tb.Fatalf("%s is bridged to %q, want %s", a.name, c.Reachability.Broker, home.name)
		}
	}
	return f
}

// killHome kills the first broker with SIGKILL and waits until every
// agent is online on another. It returns how long after the kill the
// last and the first agent came online there.
func (f *failoverCluster) killHome() (last, first time.Duration) {
	f.tb.Helper()
	killed := time.Now()
	f.brokers[0].proc.signal(f.tb, syscall.SIGKILL)
	online := map[string]time.Time{}
	poll(f.tb, 90*time.Second, "every agent online on a surviving broker", func() (bool, string) {
		for _, br := range f.brokers[1:] {
			for _, e := range br.presenceEvents() {
				if e.msg == "machine online" && !e.at.Before(killed.Truncate(time.Millisecond)) {
					if t, ok := online[e.id]; !ok || e.at.Before(t) {
						online[e.id] = e.at
					}
				}
			}
		}
		var missing []string
		for _, a := range f.agents {
			if _, ok := online[a.id]; !ok {
				missing = append(missing, a.name)
			}
		}
		return len(missing) == 0, "waiting for " + strings.Join(missing, ", ")
	})
	first = time.Hour
	for _, t := range online {
		last, first = max(last, t.Sub(killed)), min(first, t.Sub(killed))
	}
	return last, first
}

// stop kills the op's processes, so the next op runs on an idle machine.
func (f *failoverCluster) stop() {
	for _, a := range f.agents {
		a.proc.cmd.Process.Signal(syscall.SIGKILL)
		<-a.proc.done
	}
	for _, br := range f.brokers {
		br.proc.cmd.Process.Signal(syscall.SIGKILL)
		<-br.proc.done
	}
}
