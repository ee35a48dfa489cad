package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// catchUpBatch is how many records one Export/Import carries in
// BenchmarkCatchUp, and how many puts share a transaction in its
// baseline.
const catchUpBatch = 500

// BenchmarkCatchUp measures a broker joining with an empty disk: it
// imports N machine records (each a ~3.3 KB snapshot, 5 history items)
// exported from another store, catchUpBatch records per Import. The
// baseline sub-benchmark writes the same bytes with raw bbolt puts in
// transactions of the same size: Import's records/s divided by the
// baseline's is what validation, merging and the indexes cost.
func BenchmarkCatchUp(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		batches := exportedFleet(b, n)
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				dst, err := Open(Config{Path: filepath.Join(b.TempDir(), "broker.db"), Broker: "west"})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for _, recs := range batches {
					if _, err := dst.Import(recs); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if got := len(dst.Machines()); got != n {
					b.Fatalf("%d machines after catch-up, want %d", got, n)
				}
				dst.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
		b.Run(fmt.Sprintf("machines=%d/baseline", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				db := baselineDB(b)
				b.StartTimer()
				for _, recs := range batches {
					if err := db.Update(func(tx *bolt.Tx) error { return putRaw(tx, recs) }); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				db.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// exportedFleet builds a store of n machines and returns its export in
// batches of catchUpBatch records.
func exportedFleet(b *testing.B, n int) [][]Record {
	b.Helper()
	src, err := Open(Config{Path: filepath.Join(b.TempDir(), "src.db"), Broker: "east"})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	keys := make([]Key, 0, n)
	for lo := 0; lo < n; lo += catchUpBatch {
		recs := make([]Record, 0, catchUpBatch)
		for i := lo; i < min(n, lo+catchUpBatch); i++ {
			recs = append(recs, fleetRecord(b, i))
			keys = append(keys, recs[len(recs)-1].Key)
		}
		if _, err := src.Import(recs); err != nil {
			b.Fatal(err)
		}
	}
	var batches [][]Record
	for lo := 0; lo < n; lo += catchUpBatch {
		recs, err := src.Export(keys[lo:min(n, lo+catchUpBatch)])
		if err != nil {
			b.Fatal(err)
		}
		batches = append(batches, recs)
	}
	return batches
}

// fleetRecord is machine i of a fleet: a distinct snapshot and five
// check-ins of history.
func fleetRecord(b *testing.B, i int) Record {
	id := fmt.Sprintf("12D3KooWfleet%06d", i)
	snap := testSnapshot("host-"+id, i)
	raw, err := json.Marshal(&snap)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	digest := hex.EncodeToString(sum[:])
	at := t0.Add(time.Hour)
	seen := at.Add(time.Minute)
	m := &MachineRecord{Name: fmt.Sprintf("host-%d", i), Client: "acme", EnrolledAt: t0, LastSeen: &seen,
		CheckIn: &CheckInMeta{Seq: 5, At: at, Reason: wire.ReasonInterval, BootID: snap.BootID,
			CollectedAt: snap.CollectedAt, Digest: digest},
		Snapshot: raw, FirstSeen: map[string]time.Time{}}
	for _, u := range snap.PendingUpdates {
		m.FirstSeen[strings.ToLower(u.ID)] = t0
	}
	for seq := uint64(5); seq > 0; seq-- {
		m.History = append(m.History, wire.HistoryItem{Seq: seq, At: at.Add(-time.Duration(5-seq) * time.Minute),
			Reason: wire.ReasonInterval, BootID: snap.BootID, AgentVersion: snap.AgentVersion, OSVersion: snap.OS.Version,
			Packages: len(snap.Packages), PendingUpdates: len(snap.PendingUpdates), Digest: digest})
	}
	return Record{Key: machineKey(id), Machine: m}
}

func baselineDB(b *testing.B) *bolt.DB {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "baseline.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bktMachines, bktSnapshots, bktHistory} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// putRaw stores each record's bytes where the store keeps them, with
// nothing checked or derived: the record without snapshot and history,
// the snapshot, and each history item.
func putRaw(tx *bolt.Tx, recs []Record) error {
	for _, r := range recs {
		m := *r.Machine
		m.Snapshot, m.History = nil, nil
		if err := putJSON(tx.Bucket(bktMachines), []byte(r.ID), m); err != nil {
			return err
		}
		if err := tx.Bucket(bktSnapshots).Put([]byte(r.ID), r.Machine.Snapshot); err != nil {
			return err
		}
		for slot, it := range r.Machine.History {
			if err := putJSON(tx.Bucket(bktHistory), historyKey(r.ID, slot), it); err != nil {
				return err
			}
		}
	}
	return nil
}

// BenchmarkDigest measures what anti-entropy asks of a store of 100k
// records on every gossip round: the digest, comparing a remote digest,
// one bucket's versions, and deciding which of them to fetch. None of
// them reads the file.
func BenchmarkDigest(b *testing.B) {
	const n = 100_000
	s, err := Open(Config{Path: filepath.Join(b.TempDir(), "broker.db"), Broker: "east"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for lo := 0; lo < n; lo += MaxRecords {
		recs := make([]Record, 0, MaxRecords)
		for i := lo; i < min(n, lo+MaxRecords); i++ {
			seen := t0.Add(time.Duration(i) * time.Second)
			recs = append(recs, Record{Key: machineKey(fmt.Sprintf("12D3KooWfleet%06d", i)),
				Machine: &MachineRecord{Name: fmt.Sprintf("host-%d", i), Client: "acme", EnrolledAt: t0, LastSeen: &seen}})
		}
		if _, err := s.Import(recs); err != nil {
			b.Fatal(err)
		}
	}
	other := s.Digest()
	other.Buckets[7].Hash ^= 1
	bucket := s.BucketVersions(7)

	b.Run("records=100000/Digest", func(b *testing.B) {
		for b.Loop() {
			_ = s.Digest()
		}
	})
	b.Run("records=100000/DiffBuckets", func(b *testing.B) {
		for b.Loop() {
			if len(s.DiffBuckets(other)) != 1 {
				b.Fatal("want one bucket")
			}
		}
	})
	b.Run("records=100000/BucketVersions", func(b *testing.B) {
		for b.Loop() {
			s.BucketVersions(7)
		}
		b.ReportMetric(float64(len(bucket)), "versions")
	})
	b.Run("records=100000/Want", func(b *testing.B) {
		for b.Loop() {
			if len(s.Want(bucket)) != 0 {
				b.Fatal("wants its own records")
			}
		}
	})
}
