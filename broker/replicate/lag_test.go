package replicate

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
)

// lagClock is a Config.Now the test moves by hand.
type lagClock struct{ ns atomic.Int64 }

func newLagClock() *lagClock {
	c := &lagClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *lagClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *lagClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestLagTable: a peer's lag runs from its last sync, or from when it was
// first heard of; an older sync never moves it back; peers no longer live
// are forgotten.
func TestLagTable(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var lt lagTable
	if got := lt.longest(nil, t0); got != 0 {
		t.Fatalf("no peers: %v, want 0", got)
	}
	lt.heard("b2", t0)
	lt.heard("b3", t0.Add(5*time.Second))
	if got := lt.longest([]string{"b2", "b3"}, t0.Add(20*time.Second)); got != 20*time.Second {
		t.Errorf("never synced: %v, want 20s (since b2 was first heard)", got)
	}
	lt.synced("b2", t0.Add(18*time.Second))
	lt.synced("b2", t0.Add(10*time.Second)) // a slower pull finishing late
	if got := lt.longest([]string{"b2", "b3"}, t0.Add(20*time.Second)); got != 15*time.Second {
		t.Errorf("b2 synced at 18s, b3 never: %v, want 15s (b3)", got)
	}
	lt.heard("b3", t0.Add(19*time.Second)) // a later digest is not a sync
	if got := lt.longest([]string{"b2"}, t0.Add(20*time.Second)); got != 2*time.Second {
		t.Errorf("b3 not live: %v, want 2s (b2 alone)", got)
	}
	if _, ok := lt.peers["b3"]; ok {
		t.Error("b3 is still remembered after it left the live set")
	}
	if got := lt.longest([]string{"b2", "b4"}, t0.Add(30*time.Second)); got != 12*time.Second {
		t.Errorf("b4 never heard: %v, want 12s (b2; b4 starts counting now)", got)
	}
}

// TestLagFromDigests: a matching digest is a sync, a differing one is not,
// and digests from strangers or dead brokers count for nothing. Alone, there
// is no lag to report.
func TestLagFromDigests(t *testing.T) {
	clock := newLagClock()
	local := fleettest.Open(t)
	r := New(Config{Now: clock.Now}, local, nil)
	if _, ok := r.Lag(); ok {
		t.Fatal("a broker alone reports a replication lag")
	}
	b2 := cluster.Member{Name: "b2", State: cluster.StateAlive, Meta: cluster.Meta{PeerID: "peer-b2"}}
	b3 := cluster.Member{Name: "b3", State: cluster.StateDead, Meta: cluster.Meta{PeerID: "peer-b3"}}
	r.Join(&members{local: "b1", list: []cluster.Member{{Name: "b1", State: cluster.StateAlive}, b2, b3}})

	same := digestOf(t, local)
	other := fleettest.Open(t)
	fleettest.Enrol(t, other, "machine-1", "acme", "desk-1", clock.Now())
	differs := digestOf(t, other)

	r.MergeDigest(b2, same)
	r.MergeDigest(b3, differs) // dead: not counted
	r.MergeDigest(cluster.Member{Name: "stranger", State: cluster.StateAlive}, differs)
	clock.Advance(10 * time.Second)
	if lag, ok := r.Lag(); !ok || lag != 10*time.Second {
		t.Fatalf("after a matching digest 10s ago: %v %v, want 10s", lag, ok)
	}
	r.MergeDigest(b2, differs) // enqueued; nothing pulls it here
	clock.Advance(5 * time.Second)
	if lag, _ := r.Lag(); lag != 15*time.Second {
		t.Errorf("after a differing digest: %v, want 15s (a digest that differs is no sync)", lag)
	}
	r.MergeDigest(b2, same)
	if lag, _ := r.Lag(); lag != 0 {
		t.Errorf("after a matching digest now: %v, want 0", lag)
	}
	if len(r.lag.peers) != 1 {
		t.Errorf("lag table holds %d peers, want 1 (b2): strangers and dead brokers are not kept", len(r.lag.peers))
	}
}

func digestOf(t *testing.T, st *store.Store) []byte {
	t.Helper()
	raw, err := st.Digest().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestLagAfterPull: with two real hosts on loopback, a pull of a peer's
// differing buckets is a sync as of the latest digest it covered, not of
// the first; once the peer cannot be reached, failed pulls leave the lag
// growing.
func TestLagAfterPull(t *testing.T) {
	clock := newLagClock()
	peerStore := fleettest.Open(t)
	for i := range 3 {
		id := fleettest.PeerID(t).String()
		fleettest.Enrol(t, peerStore, id, "acme", "desk-"+string(rune('a'+i)), clock.Now())
	}
	peerHost := loopbackHost(t, true)
	served := New(Config{}, peerStore, peerHost)
	peerInfo := cluster.Member{Name: "b2", State: cluster.StateAlive,
		Meta: cluster.Meta{PeerID: peerHost.ID().String(), Bridge: addrs(peerHost)}}

	logs := &pullLog{}
	local := fleettest.Open(t)
	r := New(Config{Now: clock.Now, Logger: slog.New(logs)}, local, loopbackHost(t, false))
	r.Join(&members{local: "b1", list: []cluster.Member{{Name: "b1", State: cluster.StateAlive}, peerInfo}})
	served.Join(&members{local: "b2", list: []cluster.Member{peerInfo,
		{Name: "b1", State: cluster.StateAlive, Meta: cluster.Meta{PeerID: r.host.ID().String()}}}})
	peerHost.SetStreamHandler(Proto, serve.Handle(serve.New(nil, nil), served.Spec(), served.Serve))

	r.MergeDigest(peerInfo, digestOf(t, peerStore)) // first heard at t0
	clock.Advance(100 * time.Second)
	r.MergeDigest(peerInfo, digestOf(t, peerStore)) // the pull covers this one
	clock.Advance(10 * time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	deadline := time.Now().Add(10 * time.Second)
	for len(local.DiffBuckets(peerStore.Digest())) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not caught up within 10s: %d machines", local.Count())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitLag(t, r, 10*time.Second, "after the pull of the digest of 10s ago")

	// The peer goes away: the next pulls fail and the lag keeps growing.
	peerHost.Close()
	fleettest.Enrol(t, peerStore, fleettest.PeerID(t).String(), "acme", "desk-late", clock.Now())
	r.MergeDigest(peerInfo, digestOf(t, peerStore))
	for !logs.failed() {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("no failed pull logged within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	clock.Advance(50 * time.Second)
	if lag, _ := r.Lag(); lag != 60*time.Second {
		t.Errorf("after a failed pull: lag %v, want 60s (since the last sync)", lag)
	}
}

// waitLag waits until r's lag is want: the pull that sets it finishes in
// the background.
func waitLag(t *testing.T, r *Replicator, want time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lag, _ := r.Lag()
		if lag == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: lag %v, want %v", what, lag, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// loopbackHost is a bridge host with a fresh key, listening on loopback
// when listen is set, closed when the test ends.
func loopbackHost(t *testing.T, listen bool) host.Host {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "broker.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := bridge.HostConfig{Key: key}
	if listen {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	h, err := bridge.NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// addrs are h's listen addresses as member metadata carries them.
func addrs(h host.Host) []string {
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// pullLog is a slog.Handler that notices failed pulls.
type pullLog struct{ fails atomic.Int32 }

func (l *pullLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *pullLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "pull failed") {
		l.fails.Add(1)
	}
	return nil
}
func (l *pullLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *pullLog) WithGroup(string) slog.Handler      { return l }
func (l *pullLog) failed() bool                       { return l.fails.Load() > 0 }
