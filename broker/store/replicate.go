package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// One exchange between brokers A and B, run both ways:
//
//	A: d := a.Digest()                     → B
//	B: for each b.DiffBuckets(d):
//	     B's BucketVersions(bucket)        → A
//	A: keys := a.Want(versions)            → B
//	B: recs, _ := b.Export(keys)           → A
//	A: a.Import(recs)
//
// after which A holds everything B had that was newer. Running it the
// other way too makes the two equal; a second round settles the records
// whose parts merged on both sides (see newer).

// Want returns the keys of the records in remote (another broker's
// versions, typically one digest bucket's) that this store lacks or that
// are newer than its own in some part. Invalid versions and tombstones past
// their retention are ignored.
func (s *Store) Want(remote []Version) []Key {
	cutoff := s.tombCutoff()
	seen := make(map[Key]bool, len(remote))
	var out []Key
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := range remote {
		v := &remote[i]
		if seen[v.Key] || v.Validate() != nil || v.Deleted && v.Clock.Time().Before(cutoff) {
			continue
		}
		seen[v.Key] = true
		if local, ok := s.idx.get(v.Key); newer(local, ok, *v) {
			out = append(out, v.Key)
		}
	}
	return out
}

// Export returns the records named by keys as they are stored, in the
// order asked, skipping keys it does not hold. Machine records carry their
// latest snapshot and their history.
func (s *Store) Export(keys []Key) ([]Record, error) {
	if len(keys) > MaxKeys {
		return nil, fmt.Errorf("store: export: %w", malformed("%d keys, limit %d", len(keys), MaxKeys))
	}
	out := make([]Record, 0, len(keys))
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, k := range keys {
			if k.Validate() != nil {
				continue
			}
			r, found, err := exportRecord(tx, k)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			if found {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: export: %w", err)
	}
	return out, nil
}

func exportRecord(tx *bolt.Tx, k Key) (Record, bool, error) {
	r := Record{Key: k}
	if k.Kind == KindMachine {
		m := new(Machine)
		found, err := getJSON(tx.Bucket(bktMachines), []byte(k.ID), m)
		if err != nil || !found {
			return r, false, err
		}
		r.Machine, err = exportMachine(tx, m)
		return r, err == nil, err
	}
	rec, found, err := getControl(tx, k)
	if err != nil || !found {
		return r, false, err
	}
	switch rec := rec.(type) {
	case *ClientRecord:
		r.Client = rec
	case *TokenRecord:
		r.Token = rec
	case *TechnicianRecord:
		r.Technician = rec
	case *JobRecord:
		r.Job = rec
	case *AdminRecord:
		r.Admin = rec
	case *RemovalRecord:
		r.Removal = rec
	case *ReleaseRecord:
		r.Release = rec
	case *ReleaseKeyRecord:
		r.ReleaseKey = rec
	case *RolloutRecord:
		r.Rollout = rec
	case *PolicyRecord:
		r.Policy = rec
	}
	return r, true, nil
}

func exportMachine(tx *bolt.Tx, m *Machine) (*MachineRecord, error) {
	r := &MachineRecord{Name: m.Name, Client: m.Client, EnrolledAt: m.EnrolledAt, LastUpdate: m.LastUpdate}
	if m.LastSeen != nil {
		t := *m.LastSeen
		r.LastSeen = &t
	}
	if m.LastCheckIn == nil {
		r.Hostname = m.Hostname
		return r, nil
	}
	raw := tx.Bucket(bktSnapshots).Get([]byte(m.ID))
	if raw == nil {
		return nil, fmt.Errorf("check-in %d has no stored snapshot", m.LastCheckIn.Seq)
	}
	r.Snapshot = bytes.Clone(raw)
	c := *m.LastCheckIn
	if c.Digest == "" {
		sum := sha256.Sum256(raw)
		c.Digest = hex.EncodeToString(sum[:])
	}
	r.CheckIn = &c
	for _, u := range m.PendingUpdates {
		if r.FirstSeen == nil {
			r.FirstSeen = map[string]time.Time{}
		}
		t := c.At
		if u.FirstSeen != nil {
			t = *u.FirstSeen
		}
		r.FirstSeen[strings.ToLower(u.ID)] = t
	}
	var err error
	r.History, err = readHistory(tx.Bucket(bktHistory), m.ID)
	return r, err
}
