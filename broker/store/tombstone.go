package store

import "fmt"

// Deletions. A deleted control record becomes a tombstone: its name, the
// clock of the deletion and the incarnation it ended. The tombstone
// replicates like any record and beats every older write; a write with a
// later clock (creating the record again) beats it. Tombstones are kept
// for Config.TombstoneTTL after the deletion's clock, then dropped by
// every broker at about the same time, since the age is the clock's and
// not the time the tombstone arrived.

// PurgeTombstones drops the tombstones older than Config.TombstoneTTL and
// returns how many. Open calls it; a long-running broker should call it
// now and then (once a day is plenty).
func (s *Store) PurgeTombstones() (int, error) {
	cutoff := s.tombCutoff()
	var dead []Key
	s.mu.RLock()
	for b := range s.idx.entries {
		for k, e := range s.idx.entries[b] {
			if e.v.Deleted && e.v.Clock.Time().Before(cutoff) {
				dead = append(dead, k)
			}
		}
	}
	s.mu.RUnlock()
	if len(dead) == 0 {
		return 0, nil
	}
	var n int
	err := s.write(func(b *batch) error {
		n = 0
		for _, k := range dead {
			rec, found, err := getControl(b.tx, k)
			if err != nil {
				return err
			}
			if st := stampOf(rec); !found || !st.Deleted || !st.Clock.Time().Before(cutoff) {
				continue
			}
			if err := b.deleteControl(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: purge tombstones: %w", err)
	}
	return n, nil
}

// remove deletes a control record, leaving a tombstone. No operation
// deletes records yet; this is the write such an operation will make
// (and the tests make).
func (s *Store) remove(k Key) error {
	return s.write(func(b *batch) error {
		rec, found, err := getControl(b.tx, k)
		switch {
		case err != nil:
			return err
		case !found || !stampOf(rec).exists():
			return refuse(fmt.Errorf("%s: %w", k, ErrNotFound))
		}
		t := tombstone(rec, b.s.clock.tick())
		if k.Kind == KindTechnician {
			if err := b.reindexTechnician(rec.(*TechnicianRecord), t.(*TechnicianRecord)); err != nil {
				return err
			}
		}
		return b.putControl(k, t)
	})
}
