package store

import (
	"fmt"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// AdminName is the technician that the admin credential logs in as.
const AdminName = "admin"

// adminBorn is the first incarnation of the admin technician on every
// broker. Each broker creates the admin technician when it first starts;
// with one incarnation those copies are one technician, and keys bound to
// it on any broker merge, where technicians created by an operation on two
// brokers are two incarnations and the later wins. The first-start copy
// is also stamped with adminBorn as its clock, so that it loses to every
// admin record the cluster already has: a broker that joins after the
// admin credential was rotated (RotateAdmin, a later incarnation) takes
// the rotated record rather than bringing the old incarnation back.
var adminBorn = Clock{Wall: 1, Origin: AdminName}

// AdminHash returns the stored hash of the admin credential, or "".
func (s *Store) AdminHash() string {
	var rec AdminRecord
	s.db.View(func(tx *bolt.Tx) error {
		getJSON(tx.Bucket(bktMeta), keyAdmin, &rec)
		return nil
	})
	if !rec.exists() {
		return ""
	}
	return rec.Hash
}

// SetAdminHash stores the hash of the admin credential and creates the admin
// technician (every client, every mode) if it does not exist. The last
// credential set on any broker wins on all of them.
func (s *Store) SetAdminHash(hash string, now time.Time) error {
	return s.write(func(b *batch) error {
		old, found, err := b.admin()
		if err != nil {
			return err
		}
		rec := &AdminRecord{Hash: hash, Stamp: b.stamp()}
		if found && old.exists() {
			rec.Born = old.Born
		}
		if err := rec.check(); err != nil {
			return refuse(fmt.Errorf("%w: admin credential: %v", ErrMalformed, err))
		}
		switch t, found, err := b.technician(AdminName); {
		case err != nil:
			return err
		case found && t.exists():
			return b.putControl(Key{KindAdmin, AdminName}, rec)
		}
		t := &TechnicianRecord{Technician: Technician{Technician: wire.Technician{Name: AdminName, Admin: true,
			Clients: []string{"*"}, Modes: []string{wire.ModeReadOnly, wire.ModeInteractive, wire.ModeElevated},
			CreatedAt: now.UTC()}}, Stamp: Stamp{Born: adminBorn, Clock: adminBorn}}
		if err := b.putControl(Key{KindAdmin, AdminName}, rec); err != nil {
			return err
		}
		return b.putControl(Key{KindTechnician, AdminName}, t)
	})
}

// CreateTechnician stores a technician with the hash of its one-time login
// token. Every client it names must exist. A deleted technician (a
// tombstone) may be created again; it starts without keys.
func (s *Store) CreateTechnician(t wire.Technician, loginHash string, expires time.Time) error {
	return s.write(func(b *batch) error {
		switch old, found, err := b.technician(t.Name); {
		case err != nil:
			return err
		case found && old.exists():
			return refuse(fmt.Errorf("technician %q: %w", t.Name, ErrExists))
		}
		for _, c := range t.Clients {
			switch exists, err := b.clientExists(c); {
			case err != nil:
				return err
			case !exists:
				return refuse(fmt.Errorf("client %q: %w", c, ErrNotFound))
			}
		}
		if b.tx.Bucket(bktLogins).Get([]byte(loginHash)) != nil {
			return refuse(fmt.Errorf("login token: %w", ErrExists))
		}
		t.Keys = nil
		rec := &TechnicianRecord{Technician: Technician{Technician: t, LoginHash: loginHash,
			LoginExpiresAt: expires.UTC()}, Stamp: b.stamp()}
		if err := rec.check(t.Name); err != nil {
			return refuse(fmt.Errorf("%w: technician: %v", ErrMalformed, err))
		}
		if err := b.tx.Bucket(bktLogins).Put([]byte(loginHash), []byte(t.Name)); err != nil {
			return err
		}
		return b.putControl(Key{KindTechnician, t.Name}, rec)
	})
}

// Login binds key to the technician whose one-time login token hashes to
// hash, and uses the token up. With admin set, hash is ignored and key is
// bound to the admin technician (the caller has checked the credential).
//
// Binding a key and using the token up do not move the record's clock:
// keys merge as a set and a used token stays used on every broker.
func (s *Store) Login(hash, key string, admin bool, now time.Time) (wire.Technician, error) {
	var out wire.Technician
	err := s.write(func(b *batch) error {
		out = wire.Technician{}
		name := AdminName
		if !admin {
			n := b.tx.Bucket(bktLogins).Get([]byte(hash))
			if n == nil {
				return refuse(ErrTokenUnknown)
			}
			name = string(n)
		}
		rec, found, err := b.technician(name)
		switch {
		case err != nil:
			return err
		case !found || !rec.exists():
			return refuse(fmt.Errorf("technician %s: %w", name, ErrNotFound))
		}
		out = rec.Technician.Technician
		if other := b.tx.Bucket(bktTechKeys).Get([]byte(key)); other != nil && string(other) != rec.Name {
			return refuse(fmt.Errorf("key %s is bound to technician %s: %w", key, other, ErrExists))
		}
		if err := validID("key", key); err != nil {
			return refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
		}
		if !admin {
			if !now.Before(rec.LoginExpiresAt) {
				return refuse(ErrTokenExpired)
			}
			if err := b.tx.Bucket(bktLogins).Delete([]byte(hash)); err != nil {
				return err
			}
			rec.LoginHash, rec.LoginUsed = "", true
		}
		rec.Keys = addKey(rec.Keys, key)
		if err := b.tx.Bucket(bktTechKeys).Put([]byte(key), []byte(rec.Name)); err != nil {
			return err
		}
		out = rec.Technician.Technician
		return b.putControl(Key{KindTechnician, rec.Name}, rec)
	})
	if err != nil {
		s.log.Warn("login refused", "key", key, "err", err)
	}
	return out, err
}

// addKey inserts key into a sorted list of keys if it is not there.
func addKey(keys []string, key string) []string {
	i, found := slices.BinarySearch(keys, key)
	if found {
		return keys
	}
	return slices.Insert(slices.Clone(keys), i, key)
}

// TechnicianByKey returns the technician a key is bound to.
func (s *Store) TechnicianByKey(key string) (wire.Technician, error) {
	var rec TechnicianRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		name := tx.Bucket(bktTechKeys).Get([]byte(key))
		if name == nil {
			return ErrNotFound
		}
		found, err := getJSON(tx.Bucket(bktTechnicians), name, &rec)
		switch {
		case err == nil && (!found || !rec.exists() || !slices.Contains(rec.Keys, key)):
			err = ErrNotFound
		case err == nil && rec.Disabled:
			err = fmt.Errorf("%s: %w", technicianRevoked(&rec, "disabled").Reason, ErrDisabled)
		}
		return err
	})
	return rec.Technician.Technician, err
}

// Technicians lists technicians by name.
func (s *Store) Technicians() ([]wire.Technician, error) {
	var out []wire.Technician
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktTechnicians).ForEach(func(k, _ []byte) error {
			var rec TechnicianRecord
			if _, err := getJSON(tx.Bucket(bktTechnicians), k, &rec); err != nil {
				return err
			}
			if rec.exists() {
				out = append(out, rec.Technician.Technician)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}
