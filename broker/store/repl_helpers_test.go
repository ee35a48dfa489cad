package store

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a store's physical clock in replication tests, so that
// which write wins is decided by the test, not by the scheduler.
type fakeClock struct {
	mu sync.Mutex // guards all following fields
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// broker is one store in a replication test: its name and its clock.
type broker struct {
	*Store
	cfg   Config
	clock *fakeClock
}

// brokerStart is where the clocks of the brokers in tests start: a day
// after t0, so records stamped around t0 are in their past.
var brokerStart = t0.Add(24 * time.Hour)

// newBroker opens an empty store named name whose clock starts at
// brokerStart.
func newBroker(tb testing.TB, name string, historyLimit int) *broker {
	tb.Helper()
	cfg := testConfig(tb, historyLimit)
	clk := newFakeClock(brokerStart)
	cfg.Broker, cfg.Now = name, clk.Now
	return &broker{Store: openStore(tb, cfg), cfg: cfg, clock: clk}
}

func (b *broker) reopen(tb testing.TB) {
	tb.Helper()
	b.Store = reopen(tb, b.Store, b.cfg)
}

// pull runs one exchange from src into dst, through the wire encodings
// of each message, and returns how many records dst imported.
func pull(tb testing.TB, dst, src *Store) int {
	tb.Helper()
	raw, err := dst.Digest().MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	var d Digest
	if err := d.UnmarshalBinary(raw); err != nil {
		tb.Fatalf("digest: %v", err)
	}
	n := 0
	for _, bucket := range src.DiffBuckets(d) {
		vs, err := DecodeVersions(mustMarshal(tb, src.BucketVersions(bucket)))
		if err != nil {
			tb.Fatalf("bucket %d versions: %v", bucket, err)
		}
		keys, err := DecodeKeys(mustMarshal(tb, dst.Want(vs)))
		if err != nil {
			tb.Fatalf("bucket %d keys: %v", bucket, err)
		}
		if len(keys) == 0 {
			continue
		}
		recs, err := src.Export(keys)
		if err != nil {
			tb.Fatalf("Export: %v", err)
		}
		recs, err = DecodeRecords(mustMarshal(tb, recs))
		if err != nil {
			tb.Fatalf("bucket %d records: %v", bucket, err)
		}
		res, err := dst.Import(recs)
		if err != nil {
			tb.Fatalf("Import: %v", err)
		}
		n += len(recs)
		for _, k := range res.Deferred {
			// A release waits for the fleet key, which may come in
			// another bucket of the exchange: the next round brings it.
			if k.Kind != KindRelease {
				tb.Fatalf("Import deferred %v", res.Deferred)
			}
		}
	}
	return n
}

// converge exchanges both ways until a and b have equal digests, and
// returns how many rounds that took. It fails after 5.
func converge(tb testing.TB, a, b *Store) int {
	tb.Helper()
	for round := 1; round <= 5; round++ {
		pull(tb, a, b)
		pull(tb, b, a)
		if a.Digest() == b.Digest() {
			return round
		}
	}
	tb.Fatalf("no convergence after 5 rounds: buckets %v differ", a.DiffBuckets(b.Digest()))
	return 0
}

// allKeys lists every record a store holds, in bucket order.
func allKeys(s *Store) []Key {
	var keys []Key
	for b := range DigestBuckets {
		for _, v := range s.BucketVersions(b) {
			keys = append(keys, v.Key)
		}
	}
	return keys
}

// exportAll is every record a store holds, encoded: what must be equal
// byte for byte on brokers that have converged.
func exportAll(tb testing.TB, s *Store) map[Key]string {
	tb.Helper()
	recs, err := s.Export(allKeys(s))
	if err != nil {
		tb.Fatal(err)
	}
	out := make(map[Key]string, len(recs))
	for _, r := range recs {
		out[r.Key] = string(mustMarshal(tb, r))
	}
	return out
}

// assertConverged fails unless a and b export the same records byte for
// byte and have equal digests.
func assertConverged(tb testing.TB, a, b *Store) {
	tb.Helper()
	ea, eb := exportAll(tb, a), exportAll(tb, b)
	for k, ra := range ea {
		if rb, ok := eb[k]; !ok {
			tb.Errorf("%s only on the first store", k)
		} else if ra != rb {
			tb.Errorf("%s differs:\n  %s\n  %s", k, ra, rb)
		}
	}
	for k := range eb {
		if _, ok := ea[k]; !ok {
			tb.Errorf("%s only on the second store", k)
		}
	}
	if a.Digest() != b.Digest() {
		tb.Errorf("digests differ in buckets %v", a.DiffBuckets(b.Digest()))
	}
}

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// exportOne returns one stored record.
func exportOne(tb testing.TB, s *Store, k Key) Record {
	tb.Helper()
	recs, err := s.Export([]Key{k})
	if err != nil || len(recs) != 1 {
		tb.Fatalf("Export(%s) = %d records, %v", k, len(recs), err)
	}
	return recs[0]
}

// mustImport imports recs and fails the test on an error.
func mustImport(tb testing.TB, s *Store, recs ...Record) ImportResult {
	tb.Helper()
	res, err := s.Import(recs)
	if err != nil || len(res.Deferred) > 0 {
		tb.Fatalf("Import = %+v, %v", res, err)
	}
	return res
}

func machineKey(id string) Key { return Key{KindMachine, id} }

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}
