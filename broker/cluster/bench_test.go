package cluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkPresencePropagation measures how long a SetOnline on one broker
// takes to reach every other broker's view, on real loopback sockets
// (memberlist's NetTransport, encrypted) with the production LAN profile:
// gossip every 200 ms to 3 random brokers, each of which passes the news
// on. Per size it times 50 events from random brokers, one at a time at a
// random phase of the gossip tick, until every other broker's OnPresence
// (which fires when its Presence changes) has reported it. It reports the
// p50 and p99 in ms.
//
// Baseline, from the same run and the same brokers: memberlist's probe
// round trip (Member.RTT, the latest answered ping from every broker to
// every other), i.e. what one UDP exchange costs on this path, so
// propagation/probe says how many "network round trips" gossip costs.
func BenchmarkPresencePropagation(b *testing.B) {
	for _, n := range []int{3, 10, 50} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) { benchPropagation(b, n) })
	}
}

func benchPropagation(b *testing.B, n int) {
	spreadBench(b, n, spread{
		// A callback on the origin fires too; spreadBench counts only
		// the others.
		watch: func(c *Cluster, heard func(string)) {
			c.OnPresence(func(m string, e PresenceEntry) {
				if e.Online {
					heard(m)
				}
			})
		},
		send: func(origin *Cluster, m string, at time.Time) { origin.SetOnline(m, at) },
		check: func(c, origin *Cluster, m string) bool {
			e, ok := c.Presence(m)
			return ok && e.Broker == origin.LocalName()
		},
	})
}

// spread is what spreadBench times: a statement about a machine made on
// one broker (send), heard of on the others (watch calls heard for each
// machine a broker's view of changed), and checked there (check).
type spread struct {
	watch func(c *Cluster, heard func(machine string))
	send  func(origin *Cluster, machine string, at time.Time)
	check func(c, origin *Cluster, machine string) bool
}

// spreadBench runs n brokers on loopback with the LAN profile and times
// 50 statements per iteration from random brokers, one at a time at a
// random phase of the gossip tick, each until every other broker heard of
// it. It reports the p50 and p99 in ms and memberlist's probe round trip.
func spreadBench(b *testing.B, n int, sp spread) {
	l := newLoopbackLab(b, ProfileLAN)
	l.logs.quiet = true
	cs := l.cluster(n, withKeys(key(1)))

	var mu sync.Mutex // guards arrived
	arrived := map[string]int{}
	done := make(chan struct{}, 1)
	for _, c := range cs {
		sp.watch(c, func(m string) {
			mu.Lock()
			defer mu.Unlock()
			if _, ok := arrived[m]; !ok {
				return // not a statement of this run
			}
			arrived[m]++
			if arrived[m] == n-1 {
				done <- struct{}{}
			}
		})
	}
	const events = 50
	var lat []time.Duration
	gossip := profileConfig(ProfileLAN).GossipInterval
	b.ResetTimer()
	for range b.N {
		for i := range events {
			time.Sleep(rand.N(gossip))
			origin := cs[rand.N(n)]
			m := fmt.Sprintf("machine-%d-%d", len(lat), i)
			mu.Lock()
			arrived[m] = -1 // the origin's own callback
			mu.Unlock()
			start := time.Now()
			sp.send(origin, m, start)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				b.Fatalf("event %d not everywhere after 30 s", i)
			}
			lat = append(lat, time.Since(start))
			for _, c := range cs {
				if !sp.check(c, origin, m) {
					b.Fatalf("%s: %s not as %s said", c.LocalName(), m, origin.LocalName())
				}
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(msAt(lat, 0.50), "p50_ms")
	b.ReportMetric(msAt(lat, 0.99), "p99_ms")

	var rtt []time.Duration
	for _, c := range cs {
		for _, m := range c.Members() {
			if m.RTT > 0 {
				rtt = append(rtt, m.RTT)
			}
		}
	}
	b.ReportMetric(msAt(rtt, 0.50), "probe_p50_ms")
	b.ReportMetric(msAt(rtt, 0.99), "probe_p99_ms")
	b.ReportMetric(0, "ns/op")

	// Close all at once: one by one, each leave waits for its gossip.
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
}

// msAt returns the q-quantile of ds in milliseconds (nearest rank).
func msAt(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(int(q*float64(len(s))+0.5), len(s)) - 1
	return float64(s[max(i, 0)]) / float64(time.Millisecond)
}

// BenchmarkNotePropagation measures how long a SetNote on one broker of
// three takes to reach the other two brokers' Note, on real loopback
// sockets (encrypted) with the production LAN profile, as
// BenchmarkPresencePropagation does for presence: 50 notes per iteration
// from random brokers, one at a time at a random phase of the gossip
// tick, each timed until both other brokers' OnNote has reported it. It
// reports the p50 and p99 in ms, and memberlist's probe round trip as
// the baseline.
func BenchmarkNotePropagation(b *testing.B) {
	body := []byte(`{"reason":"asleep","detail":"lid closed","expected_back":"2025-01-01T08:00:00Z"}`)
	spreadBench(b, 3, spread{
		watch: func(c *Cluster, heard func(string)) { c.OnNote(heard) },
		send:  func(origin *Cluster, m string, at time.Time) { origin.SetNote(m, at, body) },
		check: func(c, origin *Cluster, m string) bool {
			nt, ok := c.Note(m)
			return ok && nt.Broker == origin.LocalName()
		},
	})
}
