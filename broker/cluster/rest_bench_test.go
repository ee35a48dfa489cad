package cluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// restMachines is how many machines the loaded clusters of
// BenchmarkGossipAtRest hold online.
const restMachines = 1000

// BenchmarkGossipAtRest measures the gossip bytes each broker sends per
// second while nothing changes, counted through a transport wrapper
// (packets and both directions of streams, as encrypted on the wire,
// without UDP/TCP/IP headers), on real loopback sockets with the
// production LAN profile, in real time. The window is one PushPullInterval
// (LAN 30 s), after the cluster settled: each broker then starts exactly
// one push/pull, so the figure does not depend on where the window falls.
//
// memberlist's bare probe and gossip traffic is not separable from ours,
// so the comparison is by content instead: the same cluster size at rest
// with no machines online, and with 1,000 machines online spread over the
// brokers (push/pull carries the whole presence table). Their ratio is
// what presence costs. All four clusters run side by side in one window,
// then the per-size sub-benchmarks report.
func BenchmarkGossipAtRest(b *testing.B) {
	sizes := []int{3, 10}
	window := profileConfig(ProfileLAN).PushPullInterval
	bare, loaded := make([]float64, len(sizes)), make([]float64, len(sizes))
	var wg sync.WaitGroup
	for i, n := range sizes {
		wg.Go(func() { bare[i] = restRate(b, n, 0, window) })
		wg.Go(func() { loaded[i] = restRate(b, n, restMachines, window) })
	}
	wg.Wait()
	for i, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportMetric(bare[i], "B/s/broker")
			b.ReportMetric(loaded[i], "B/s/broker_1k_machines")
			b.ReportMetric(loaded[i]/bare[i], "1k/bare")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// restRate builds an n-broker cluster holding machines online, waits
// until it is at rest, and returns the bytes sent per broker per second
// over window.
func restRate(b *testing.B, n, machines int, window time.Duration) float64 {
	l := newLoopbackLab(b, ProfileLAN)
	l.logs.quiet = true
	var counters []*countTransport
	var mu sync.Mutex // guards counters
	count := func(cfg *Config) {
		ct := newCountTransport(cfg.Transport.(memberlist.NodeAwareTransport))
		mu.Lock()
		counters = append(counters, ct)
		mu.Unlock()
		cfg.Transport = ct
	}
	cs := l.cluster(n, withKeys(key(1)), count)
	defer closeAll(cs)

	now := time.Now()
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range machines {
		cs[i%n].SetOnline(peerID(rng), now)
	}
	// At rest: every broker has every statement and nothing is left to
	// retransmit. Draining 1,000 statements' retransmissions takes a few
	// gossip rounds per packetful.
	settled := poll(60*time.Second, func() bool {
		for _, c := range cs {
			c.mu.Lock()
			size := c.pres.size()
			c.mu.Unlock()
			if size != machines || c.queue.NumQueued() > 0 {
				return false
			}
		}
		return true
	})
	b.Logf("nodes=%d machines=%d: at rest after %v", n, machines, time.Since(now))
	if !settled {
		b.Errorf("nodes=%d machines=%d: not at rest after 60 s", n, machines)
		return 0
	}
	sent := func() (sum int64) {
		for _, ct := range counters {
			sum += ct.sent.Load()
		}
		return sum
	}
	before, start := sent(), time.Now()
	time.Sleep(window)
	bytes, elapsed := sent()-before, time.Since(start)
	return float64(bytes) / elapsed.Seconds() / float64(n)
}

// peerID makes a random libp2p-peer-ID-like machine ID: 52 base58
// characters, which memberlist's push/pull compression cannot shrink much,
// unlike machineID's runs of zeros.
func peerID(rng *rand.Rand) string {
	const b58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	id := []byte("12D3KooW")
	for len(id) < 52 {
		id = append(id, b58[rng.IntN(len(b58))])
	}
	return string(id)
}

// countTransport counts the bytes a node sends: packets, and writes on
// the streams it dials or accepts.
type countTransport struct {
	memberlist.NodeAwareTransport
	sent    atomic.Int64
	streams chan net.Conn
	stop    chan struct{}
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*countTransport)(nil)

// newCountTransport wraps inner; a goroutine hands inner's accepted
// streams on, counted, until Shutdown.
func newCountTransport(inner memberlist.NodeAwareTransport) *countTransport {
	t := &countTransport{NodeAwareTransport: inner, streams: make(chan net.Conn), stop: make(chan struct{})}
	go func() {
		for {
			select {
			case <-t.stop:
				return
			case c := <-inner.StreamCh():
				select {
				case t.streams <- &countConn{Conn: c, n: &t.sent}:
				case <-t.stop:
					c.Close()
					return
				}
			}
		}
	}()
	return t
}

func (t *countTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *countTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.sent.Add(int64(len(b)))
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *countTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *countTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &countConn{Conn: c, n: &t.sent}, nil
}

func (t *countTransport) Shutdown() error {
	t.once.Do(func() { close(t.stop) })
	return t.NodeAwareTransport.Shutdown()
}

type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}
