package store

import (
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// importMachine merges a machine record into the stored one.
func (b *batch) importMachine(id string, r *MachineRecord, snap *wire.Snapshot) (bool, error) {
	rm := machineFromRecord(id, r, snap)
	items := make([]wire.HistoryItem, len(r.History))
	for i, it := range r.History {
		it.At = it.At.UTC()
		items[i] = it
	}
	if _, removed, err := b.removal(id); err != nil || removed {
		return false, err // removed from the fleet: its record stays out
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
	if u := r.LastUpdate; u != nil && (m.LastUpdate == nil || u.At.After(m.LastUpdate.At)) {
		c := *u
		c.At = c.At.UTC()
		m.LastUpdate = &c
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
	m := &Machine{ID: id, Name: r.Name, Client: r.Client, EnrolledAt: r.EnrolledAt.UTC(), LastUpdate: r.LastUpdate}
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
