package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
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
	case *AdminRecord:
		r.Admin = rec
	}
	return r, true, nil
}

func exportMachine(tx *bolt.Tx, m *Machine) (*MachineRecord, error) {
	r := &MachineRecord{Name: m.Name, Client: m.Client, EnrolledAt: m.EnrolledAt}
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

// Import applies records from another broker, each where it is newer than
// what is stored by the rules in doc.go, in one transaction: it returns
// after the commit. The whole batch is validated first; one malformed
// record refuses the batch (an error wrapping ErrMalformed) and nothing is
// stored. Records stamped beyond Config.MaxClockSkew ahead are deferred
// (see ImportResult). Nothing stored is ever lowered: an older record
// changes nothing.
func (s *Store) Import(recs []Record) (ImportResult, error) {
	var res ImportResult
	if len(recs) > MaxRecords {
		return res, fmt.Errorf("store: import: %w", malformed("%d records, limit %d", len(recs), MaxRecords))
	}
	snaps, errs := s.checkAll(recs)
	take := make([]bool, len(recs))
	limit := s.now().Add(s.skew)
	for i := range recs {
		r := &recs[i]
		if err := errs[i]; err != nil {
			s.log.Warn("import refused", "record", i, "key", r.Key.String(), "err", err)
			return ImportResult{}, fmt.Errorf("store: import: record %d: %w", i, err)
		}
		if future(r, limit) {
			s.log.Warn("import deferred: stamped in the future", "key", r.Key.String())
			res.Deferred = append(res.Deferred, r.Key)
			continue
		}
		take[i] = true
	}
	err := s.write(func(b *batch) error {
		res.Applied, res.Unchanged = 0, 0
		cutoff := s.tombCutoff()
		for i := range recs {
			if !take[i] {
				continue
			}
			changed, err := b.importRecord(&recs[i], snaps[i], cutoff)
			if err != nil {
				return fmt.Errorf("%s: %w", recs[i].Key, err)
			}
			if changed {
				res.Applied++
			} else {
				res.Unchanged++
			}
		}
		return nil
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("store: import: %w", err)
	}
	return res, nil
}

// checkAll validates records on as many goroutines as there are CPUs:
// decoding and re-encoding snapshots is most of an import's work, and
// each record is checked on its own.
func (s *Store) checkAll(recs []Record) ([]*wire.Snapshot, []error) {
	snaps, errs := make([]*wire.Snapshot, len(recs)), make([]error, len(recs))
	workers := min(runtime.GOMAXPROCS(0), (len(recs)+31)/32)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(recs); i = int(next.Add(1) - 1) {
				r := &recs[i]
				snaps[i], errs[i] = r.check()
				if errs[i] == nil && r.Machine != nil && len(r.Machine.Snapshot) > s.maxSnap {
					errs[i] = malformed("%s: snapshot is %d bytes, limit %d", r.Key, len(r.Machine.Snapshot), s.maxSnap)
				}
			}
		})
	}
	wg.Wait()
	return snaps, errs
}

// future reports whether a record carries a time after limit: a clock, a
// check-in time or last_seen.
func future(r *Record, limit time.Time) bool {
	if m := r.Machine; m != nil {
		return m.CheckIn != nil && m.CheckIn.At.After(limit) || m.LastSeen != nil && m.LastSeen.After(limit)
	}
	return stampOf(payload(r)).Clock.Time().After(limit)
}

// payload returns a control record's payload as a pointer.
func payload(r *Record) any {
	switch {
	case r.Client != nil:
		return r.Client
	case r.Token != nil:
		return r.Token
	case r.Technician != nil:
		return r.Technician
	}
	return r.Admin
}

// tombCutoff is the clock time before which tombstones have expired.
func (s *Store) tombCutoff() time.Time { return s.now().Add(-s.tombTTL) }

func (b *batch) importRecord(r *Record, snap *wire.Snapshot, cutoff time.Time) (bool, error) {
	if r.Kind == KindMachine {
		return b.importMachine(r.ID, r.Machine, snap)
	}
	return b.importControl(r.Key, payload(r), cutoff)
}

// importControl merges a control record into the stored one.
func (b *batch) importControl(k Key, remote any, cutoff time.Time) (bool, error) {
	st := stampOf(remote)
	b.s.clock.observe(st.Born)
	b.s.clock.observe(st.Clock)
	local, found, err := getControl(b.tx, k)
	if err != nil {
		return false, err
	}
	out := remote
	if found {
		out = mergeControl(local, remote)
		if equalJSON(out, local) {
			return false, nil
		}
	}
	var oldTech *TechnicianRecord
	if found && k.Kind == KindTechnician {
		oldTech = local.(*TechnicianRecord)
	}
	if st := stampOf(out); st.Deleted && st.Clock.Time().Before(cutoff) {
		// An expired tombstone: forget the record rather than store it.
		if !found {
			return false, nil
		}
		if oldTech != nil {
			if err := b.reindexTechnician(oldTech, nil); err != nil {
				return false, err
			}
		}
		return true, b.deleteControl(k)
	}
	if k.Kind == KindTechnician {
		if err := b.reindexTechnician(oldTech, out.(*TechnicianRecord)); err != nil {
			return false, err
		}
	}
	return true, b.putControl(k, out)
}

// importMachine merges a machine record into the stored one.
func (b *batch) importMachine(id string, r *MachineRecord, snap *wire.Snapshot) (bool, error) {
	rm := machineFromRecord(id, r, snap)
	items := make([]wire.HistoryItem, len(r.History))
	for i, it := range r.History {
		it.At = it.At.UTC()
		items[i] = it
	}
	m, ok := b.machine(id)
	if !ok {
		return true, b.addMachine(rm, r.Snapshot, items)
	}
	changed := false
	if enrolBefore(rm, m) {
		client, name := m.Client, m.Name
		m.Name, m.Client, m.EnrolledAt = rm.Name, rm.Client, rm.EnrolledAt
		if err := b.releaseName(m.ID, client, name); err != nil {
			return false, err
		}
		if err := b.claimName(m); err != nil {
			return false, err
		}
		changed = true
	}
	if readinessWins(rm, m) {
		copyReadiness(m, rm)
		if err := b.tx.Bucket(bktSnapshots).Put([]byte(id), r.Snapshot); err != nil {
			return false, err
		}
		changed = true
	} else if m.LastCheckIn == nil && rm.LastCheckIn == nil && rm.Hostname < m.Hostname {
		m.Hostname = rm.Hostname
		changed = true
	}
	if rm.LastSeen != nil && (m.LastSeen == nil || rm.LastSeen.After(*m.LastSeen)) {
		m.LastSeen = rm.LastSeen
		changed = true
	}
	if len(items) > 0 {
		hc, err := b.s.mergeHistoryInto(b.tx, m, items)
		if err != nil {
			return false, err
		}
		changed = changed || hc
	}
	if !changed {
		return false, nil
	}
	return true, b.put(m)
}

// addMachine stores a machine this broker did not know.
func (b *batch) addMachine(m *Machine, snap []byte, items []wire.HistoryItem) error {
	if m.LastCheckIn != nil {
		if err := b.tx.Bucket(bktSnapshots).Put([]byte(m.ID), snap); err != nil {
			return err
		}
	}
	if len(items) > 0 {
		if err := b.s.rewriteHistory(b.tx, m, items); err != nil {
			return err
		}
	}
	if err := b.claimName(m); err != nil {
		return err
	}
	return b.put(m)
}

// machineFromRecord builds the machine record an import describes,
// deriving the readiness part from the snapshot as a check-in does.
func machineFromRecord(id string, r *MachineRecord, snap *wire.Snapshot) *Machine {
	m := &Machine{ID: id, Name: r.Name, Client: r.Client, EnrolledAt: r.EnrolledAt.UTC()}
	if r.LastSeen != nil {
		t := r.LastSeen.UTC()
		m.LastSeen = &t
	}
	if r.CheckIn == nil {
		m.Hostname = r.Hostname
		return m
	}
	meta := *r.CheckIn
	meta.At, meta.CollectedAt = meta.At.UTC(), meta.CollectedAt.UTC()
	fs := make(map[string]time.Time, len(r.FirstSeen))
	for id, t := range r.FirstSeen {
		fs[id] = t.UTC()
	}
	setReadiness(m, snap, &meta, fs, meta.At)
	return m
}

// mergeHistoryInto merges history items from another broker into a
// machine's ring. When every new item is newer than the newest stored one
// (the usual case: the other broker took later check-ins) they are
// appended; otherwise the ring is rewritten.
func (s *Store) mergeHistoryInto(tx *bolt.Tx, m *Machine, items []wire.HistoryItem) (bool, error) {
	local, err := readHistory(tx.Bucket(bktHistory), m.ID)
	if err != nil {
		return false, err
	}
	merged, changed := mergeHistory(local, items, s.histN)
	if !changed {
		return false, nil
	}
	if len(local) <= s.histN && m.HistorySlots <= s.histN {
		var newest uint64
		if len(local) > 0 {
			newest = local[0].Seq
		}
		n := 0
		for n < len(merged) && merged[n].Seq > newest {
			n++
		}
		// Appending works when the rest of merged is the newest part of local.
		appendable := len(merged)-n <= len(local)
		for i := n; appendable && i < len(merged); i++ {
			if !sameItem(merged[i], local[i-n]) {
				appendable = false
				break
			}
		}
		if appendable {
			for i := n - 1; i >= 0; i-- {
				if err := s.appendHistory(tx, m, merged[i]); err != nil {
					return false, err
				}
			}
			return true, nil
		}
	}
	return true, s.rewriteHistory(tx, m, merged)
}
