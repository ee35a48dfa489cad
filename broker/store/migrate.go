package store

import (
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// migrate1 turns a schema 1 file into schema 2 in the transaction that
// opens it: every control record gets a clock from this broker (as if it
// had just written it), token uses already spent count as spent here, a
// technician without a login hash (other than the admin) has used its
// login, the admin hash becomes an AdminRecord, and every machine record
// gets its snapshot digest and history hash.
func (s *Store) migrate1(tx *bolt.Tx) error {
	stamp := func() Stamp {
		c := s.clock.tick()
		return Stamp{Born: c, Clock: c}
	}
	err := rewriteEach(tx, bktClients, func(raw []byte) (any, error) {
		var c wire.Client
		err := json.Unmarshal(raw, &c)
		return &ClientRecord{Name: c.Name, CreatedAt: c.CreatedAt, Stamp: stamp()}, err
	})
	if err != nil {
		return err
	}
	err = rewriteEach(tx, bktTokens, func(raw []byte) (any, error) {
		var t Token
		err := json.Unmarshal(raw, &t)
		rec := &TokenRecord{Token: t, Stamp: stamp()}
		if spent := t.Uses - t.UsesLeft; spent > 0 {
			rec.Spent = map[string]int{s.name: spent}
		}
		rec.settle()
		return rec, err
	})
	if err != nil {
		return err
	}
	err = rewriteEach(tx, bktTechnicians, func(raw []byte) (any, error) {
		var t Technician
		err := json.Unmarshal(raw, &t)
		t.Keys = slices.Compact(slices.Sorted(slices.Values(t.Keys)))
		rec := &TechnicianRecord{Technician: t, LoginUsed: t.LoginHash == "" && !t.Admin, Stamp: stamp()}
		if t.Name == AdminName {
			rec.Born = adminBorn
		}
		return rec, err
	})
	if err != nil {
		return err
	}
	meta := tx.Bucket(bktMeta)
	if h := meta.Get(keyAdminHash); h != nil {
		if err := putJSON(meta, keyAdmin, &AdminRecord{Hash: string(h), Stamp: stamp()}); err != nil {
			return err
		}
		if err := meta.Delete(keyAdminHash); err != nil {
			return err
		}
	}
	if err := s.migrateMachines(tx); err != nil {
		return err
	}
	return meta.Put(keySchema, []byte(schemaVersion))
}

// rewriteEach replaces every value of a bucket with conv's record.
func rewriteEach(tx *bolt.Tx, bucket []byte, conv func(raw []byte) (any, error)) error {
	b := tx.Bucket(bucket)
	out := map[string]any{}
	err := b.ForEach(func(k, v []byte) error {
		rec, err := conv(v)
		if err != nil {
			return fmt.Errorf("migrate %s %q: %w", bucket, k, err)
		}
		out[string(k)] = rec
		return nil
	})
	if err != nil {
		return err
	}
	for k, rec := range out {
		if err := putJSON(b, []byte(k), rec); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) migrateMachines(tx *bolt.Tx) error {
	hist := tx.Bucket(bktHistory)
	return rewriteEach(tx, bktMachines, func(raw []byte) (any, error) {
		m := new(Machine)
		if err := json.Unmarshal(raw, m); err != nil {
			return nil, err
		}
		if m.LastCheckIn != nil && m.LastCheckIn.Digest == "" {
			m.LastCheckIn.Digest = lastDigest(tx, m.ID)
		}
		m.HistoryHash = 0
		for slot := 0; slot < m.HistorySlots; slot++ {
			if v := hist.Get(historyKey(m.ID, slot)); v != nil {
				m.HistoryHash ^= hash64(v)
			}
		}
		return m, nil
	})
}
