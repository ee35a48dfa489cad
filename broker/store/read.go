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

// Count returns how many machines are stored.
func (s *Store) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.machines)
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
		var err error
		out, err = readHistory(tx.Bucket(bktHistory), id)
		return err
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
	err := s.write(func(b *batch) error {
		for id, t := range seen {
			m, ok := b.machine(id)
			if !ok || m.LastSeen != nil && !t.After(*m.LastSeen) {
				continue
			}
			t := t.UTC()
			m.LastSeen = &t
			if err := b.put(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: last seen: %w", err)
	}
	return nil
}
