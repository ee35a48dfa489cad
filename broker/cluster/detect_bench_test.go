package cluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// BenchmarkFailureDetection measures how long the cluster takes to see a
// frozen broker as dead: from the moment the broker stops answering
// anything (every packet and stream to and from it is lost, as with a
// SIGSTOPped process) until every other broker's Members shows it
// StateDead. It runs on real loopback sockets (memberlist's NetTransport,
// encrypted) with the production LAN profile, in real time: testing/synctest
// has no benchmark form, so the figures include scheduling and CPU, not only
// protocol timing. Each iteration runs several independent clusters side by
// side, freezing one random broker in each at a random phase of the probe
// interval, and reports the p50 and max over all trials in ms.
//
// Baseline, from the same clusters right after: a graceful leave (Close) of
// another broker, timed until every remaining broker shows it StateLeft,
// i.e. pure gossip propagation with no failure detector involved.
func BenchmarkFailureDetection(b *testing.B) {
	for _, tc := range []struct{ nodes, trials int }{{3, 5}, {10, 3}} {
		b.Run(fmt.Sprintf("nodes=%d", tc.nodes), func(b *testing.B) { benchDetection(b, tc.nodes, tc.trials) })
	}
}

func benchDetection(b *testing.B, n, trials int) {
	var detect, leave []time.Duration
	b.ResetTimer()
	for range b.N {
		d, l := make([]time.Duration, trials), make([]time.Duration, trials)
		var wg sync.WaitGroup
		for i := range trials {
			wg.Go(func() { d[i], l[i] = detectionTrial(b, n) })
		}
		wg.Wait()
		detect, leave = append(detect, d...), append(leave, l...)
	}
	b.StopTimer()
	b.ReportMetric(msAt(detect, 0.50), "dead_p50_ms")
	b.ReportMetric(msAt(detect, 1), "dead_max_ms")
	b.ReportMetric(msAt(leave, 0.50), "left_p50_ms")
	b.ReportMetric(msAt(leave, 1), "left_max_ms")
	b.ReportMetric(msAt(detect, 0.50)/msAt(leave, 0.50), "dead/left")
	b.ReportMetric(0, "ns/op")
}

// detectionTrial builds an n-broker cluster, freezes one broker and
// times its detection, then makes another leave and times that. It
// closes the cluster before returning.
func detectionTrial(b *testing.B, n int) (detect, leave time.Duration) {
	l := newLoopbackLab(b, ProfileLAN)
	l.logs.quiet = true
	fr := newFreezer()
	cs := l.cluster(n, withKeys(key(1)), fr.wrap)
	defer func() {
		// Pending dials towards the frozen broker fail at once from now
		// on, so Close need not wait out memberlist's TCP timeout.
		fr.thaw()
		closeAll(cs)
	}()

	mc := profileConfig(ProfileLAN)
	bound := 3*mc.ProbeInterval + time.Duration(mc.SuspicionMaxTimeoutMult*mc.SuspicionMult)*mc.ProbeInterval
	time.Sleep(rand.N(mc.ProbeInterval))
	vi := rand.N(n)
	victim := cs[vi]
	others := append(cs[:vi:vi], cs[vi+1:]...)
	start := time.Now()
	fr.freeze(victim.LocalAddr())
	if !poll(bound, func() bool { return everyoneSees(others, victim.LocalName(), StateDead) }) {
		b.Errorf("frozen broker not dead everywhere after %v", bound)
	}
	detect = time.Since(start)

	// Baseline: a graceful leave among the survivors.
	leaver, rest := others[0], others[1:]
	start = time.Now()
	done := make(chan struct{})
	go func() { leaver.Close(); close(done) }()
	if !poll(10*time.Second, func() bool { return everyoneSees(rest, leaver.LocalName(), StateLeft) }) {
		b.Errorf("leave not seen everywhere after 10 s")
	}
	leave = time.Since(start)
	<-done
	return detect, leave
}

// poll is waitFor for goroutines other than the benchmark's own, which
// must not call Fatal: it reports whether cond came true within timeout.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func everyoneSees(cs []*Cluster, name, state string) bool {
	for _, c := range cs {
		if stateOf(c, name) != state {
			return false
		}
	}
	return true
}

// closeAll closes the brokers at once (one by one, each leave would wait
// for its gossip), the frozen ones included.
func closeAll(cs []*Cluster) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
}

// freezer makes brokers stop answering, as SIGSTOP would: every packet
// to or from a frozen address is lost, and every dial to or from one
// hangs until its timeout. Unlike faults, the hang ends early at thaw,
// after which such dials fail at once (as to a killed process), so a
// benchmark's Close does not wait out memberlist's 10 s TCP timeout.
type freezer struct {
	mu     sync.Mutex
	frozen map[string]bool // mu guards; by gossip address
	thawed chan struct{}
	once   sync.Once
}

func newFreezer() *freezer {
	return &freezer{frozen: map[string]bool{}, thawed: make(chan struct{})}
}

func (f *freezer) freeze(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen[addr] = true
}

func (f *freezer) thaw() { f.once.Do(func() { close(f.thawed) }) }

func (f *freezer) cut(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frozen[from] || f.frozen[to]
}

// wrap is a Config option putting the node's transport behind f.
func (f *freezer) wrap(cfg *Config) {
	inner := cfg.Transport.(memberlist.NodeAwareTransport)
	ip, port, err := inner.FinalAdvertiseAddr("", 0)
	if err != nil {
		panic(err)
	}
	cfg.Transport = &freezeTransport{NodeAwareTransport: inner, f: f, self: net.JoinHostPort(ip.String(), fmt.Sprint(port))}
}

type freezeTransport struct {
	memberlist.NodeAwareTransport
	f    *freezer
	self string
}

var _ memberlist.NodeAwareTransport = (*freezeTransport)(nil)

func (t *freezeTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *freezeTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.f.cut(t.self, a.Addr) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *freezeTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *freezeTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.f.cut(t.self, a.Addr) {
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-t.f.thawed:
		}
		return nil, fmt.Errorf("dial %s: i/o timeout (frozen)", a.Addr)
	}
	return t.NodeAwareTransport.DialAddressTimeout(a, timeout)
}
