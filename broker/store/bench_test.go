package store

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// BenchmarkCheckIn measures durable ingest: each op is one committed and
// fsynced check-in of a ~3.3 KB snapshot (40 packages, 4 pending updates),
// issued by N agents at once. Each agent is a goroutine that owns one
// enrolled machine, so its sequence numbers only grow.
func BenchmarkCheckIn(b *testing.B) {
	for _, agents := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) {
			benchCheckIn(b, agents)
		})
	}
}

func benchCheckIn(b *testing.B, agents int) {
	s, err := Open(Config{Path: filepath.Join(b.TempDir(), "broker.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateClient("acme", t0); err != nil {
		b.Fatal(err)
	}
	hash := wire.HashSecret(wire.NewSecret())
	if err := s.CreateToken(hash, Token{Client: "acme", UsesLeft: agents, Uses: agents, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	cis := make([]*wire.CheckIn, agents)
	for i := range cis {
		id := fmt.Sprintf("12D3KooWbench%04d", i)
		if _, err := s.Enroll(EnrollRequest{TokenHash: hash, MachineID: id, Name: id, Now: t0}); err != nil {
			b.Fatal(err)
		}
		cis[i] = checkIn(id, 0, testSnapshot("host-"+id, i))
	}

	// Every agent checks in once before the clock starts, so the runs
	// measure steady state (history buckets exist, records have snapshots).
	var wg sync.WaitGroup
	for _, ci := range cis {
		wg.Go(func() { nextCheckIn(b, s, ci) })
	}
	wg.Wait()

	stats, tx := s.db.Stats(), lastTxID(b, s)
	b.ResetTimer()
	runAgents(b, s, cis, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkins/s")
	// How the time is spent, independent of how fast this disk is today:
	// check-ins sharing one commit (one fsync pair), and 4 KB pages
	// written per check-in.
	after := s.db.Stats()
	written := after.TxStats.GetPageCount() - stats.TxStats.GetPageCount()
	b.ReportMetric(float64(b.N)/float64(max(1, lastTxID(b, s)-tx)), "checkins/commit")
	b.ReportMetric(float64(written)/float64(b.N), "pages/checkin")
}

// lastTxID is the ID of the last committed write transaction.
func lastTxID(b *testing.B, s *Store) int {
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		b.Fatal(err)
	}
	return id
}

// runAgents runs one goroutine per check-in in cis until ops check-ins are
// acknowledged in all.
func runAgents(b *testing.B, s *Store, cis []*wire.CheckIn, ops int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, ci := range cis {
		wg.Go(func() {
			for next.Add(1) <= int64(ops) {
				if !nextCheckIn(b, s, ci) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// nextCheckIn sends the agent's next check-in: a new sequence number and a
// newer collection time.
func nextCheckIn(b *testing.B, s *Store, ci *wire.CheckIn) bool {
	ci.Seq++
	ci.Snapshot.CollectedAt = ci.Snapshot.CollectedAt.Add(time.Minute)
	res, err := s.CheckIn(ci, ci.Snapshot.CollectedAt.Add(time.Second))
	if err != nil || res.Duplicate {
		b.Errorf("CheckIn(%s, %d) = %+v, %v", ci.MachineID, ci.Seq, res, err)
		return false
	}
	return true
}

// BenchmarkCheckInBaselineSinglePut is what the same disk does without the
// store: one bbolt transaction with one Put of the encoded snapshot per op,
// one after another. BenchmarkCheckIn's checkins/s divided by this
// benchmark's puts/s is what group commit buys.
func BenchmarkCheckInBaselineSinglePut(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "baseline.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	bucket := []byte("snapshots")
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(bucket)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	snap := testSnapshot("host-12D3KooWbench0000", 0)
	raw, err := json.Marshal(&snap)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))

	for i := 0; b.Loop(); i++ {
		key := []byte(fmt.Sprintf("12D3KooWbench%04d", i%512))
		if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, raw) }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}
