package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// Machine returns a copy of one machine record from the in-memory index.
func (s *Store) Machine(id string) (Machine, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.machines[id]
	if !ok {
		return Machine{}, false
	}
	return *m, true
}

// Machines returns copies of every machine record. The slices inside a
// record are shared with the index and must not be modified.
func (s *Store) Machines() []Machine {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Machine, 0, len(s.machines))
	for _, m := range s.machines {
		out = append(out, *m)
	}
	return out
}

// Snapshot returns the latest stored snapshot of a machine, or nil if it
// never checked in.
func (s *Store) Snapshot(id string) (*wire.Snapshot, error) {
	var snap *wire.Snapshot
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bktSnapshots).Get([]byte(id))
		if raw == nil {
			return nil
		}
		snap = new(wire.Snapshot)
		return json.Unmarshal(raw, snap)
	})
	if err != nil {
		return nil, fmt.Errorf("store: snapshot %s: %w", id, err)
	}
	return snap, nil
}

// History returns a machine's check-in summaries, newest first.
func (s *Store) History(id string) ([]wire.HistoryItem, error) {
	var out []wire.HistoryItem
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktHistory).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var it wire.HistoryItem
			if err := json.Unmarshal(v, &it); err != nil {
				return err
			}
			out = append(out, it)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: history %s: %w", id, err)
	}
	return out, nil
}

// SetLastSeen records when machines were last seen online. It is the only
// reachability fact that is stored. Unknown machines are ignored; an older
// time never replaces a newer one.
func (s *Store) SetLastSeen(seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	var saved []*Machine
	err := s.db.Batch(func(tx *bolt.Tx) error {
		saved = saved[:0]
		b := tx.Bucket(bktMachines)
		for id, t := range seen {
			m := new(Machine)
			found, err := getJSON(b, []byte(id), m)
			if err != nil {
				return err
			}
			if !found || m.LastSeen != nil && !t.After(*m.LastSeen) {
				continue
			}
			t := t.UTC()
			m.LastSeen = &t
			m.Rev++
			if err := putJSON(b, []byte(id), m); err != nil {
				return err
			}
			saved = append(saved, m)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: last seen: %w", err)
	}
	for _, m := range saved {
		s.remember(m)
	}
	return nil
}
