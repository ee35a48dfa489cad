package store

import (
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// AdminName is the technician that the admin credential logs in as.
const AdminName = "admin"

// AdminHash returns the stored hash of the admin credential, or "".
func (s *Store) AdminHash() string {
	var h string
	s.db.View(func(tx *bolt.Tx) error {
		h = string(tx.Bucket(bktMeta).Get(keyAdminHash))
		return nil
	})
	return h
}

// SetAdminHash stores the hash of the admin credential and creates the admin
// technician (every client, every mode) if it does not exist.
func (s *Store) SetAdminHash(hash string, now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktMeta).Put(keyAdminHash, []byte(hash)); err != nil {
			return err
		}
		b := tx.Bucket(bktTechnicians)
		if b.Get([]byte(AdminName)) != nil {
			return nil
		}
		t := Technician{Technician: wire.Technician{Name: AdminName, Admin: true, Clients: []string{"*"},
			Modes: []string{wire.ModeReadOnly, wire.ModeInteractive, wire.ModeElevated}, CreatedAt: now.UTC()}}
		return putJSON(b, []byte(AdminName), t)
	})
}

// CreateTechnician stores a technician with the hash of its one-time login
// token. Every client it names must exist.
func (s *Store) CreateTechnician(t wire.Technician, loginHash string, expires time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktTechnicians)
		if b.Get([]byte(t.Name)) != nil {
			return fmt.Errorf("technician %q: %w", t.Name, ErrExists)
		}
		for _, c := range t.Clients {
			if tx.Bucket(bktClients).Get([]byte(c)) == nil {
				return fmt.Errorf("client %q: %w", c, ErrNotFound)
			}
		}
		if tx.Bucket(bktLogins).Get([]byte(loginHash)) != nil {
			return fmt.Errorf("login token: %w", ErrExists)
		}
		t.Keys = nil
		rec := Technician{Technician: t, LoginHash: loginHash, LoginExpiresAt: expires.UTC()}
		if err := tx.Bucket(bktLogins).Put([]byte(loginHash), []byte(t.Name)); err != nil {
			return err
		}
		return putJSON(b, []byte(t.Name), rec)
	})
}

// Login binds key to the technician whose one-time login token hashes to
// hash, and uses the token up. With admin set, hash is ignored and key is
// bound to the admin technician (the caller has checked the credential).
func (s *Store) Login(hash, key string, admin bool, now time.Time) (wire.Technician, error) {
	var rec Technician
	err := s.db.Update(func(tx *bolt.Tx) error {
		name := []byte(AdminName)
		if !admin {
			name = tx.Bucket(bktLogins).Get([]byte(hash))
			if name == nil {
				return ErrTokenUnknown
			}
			name = append([]byte(nil), name...)
		}
		b := tx.Bucket(bktTechnicians)
		found, err := getJSON(b, name, &rec)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("technician %s: %w", name, ErrNotFound)
		}
		if other := tx.Bucket(bktTechKeys).Get([]byte(key)); other != nil && string(other) != rec.Name {
			return fmt.Errorf("key %s is bound to technician %s: %w", key, other, ErrExists)
		}
		if !admin {
			if !now.Before(rec.LoginExpiresAt) {
				return ErrTokenExpired
			}
			if err := tx.Bucket(bktLogins).Delete([]byte(hash)); err != nil {
				return err
			}
			rec.LoginHash = ""
		}
		if !contains(rec.Keys, key) {
			rec.Keys = append(rec.Keys, key)
		}
		if err := tx.Bucket(bktTechKeys).Put([]byte(key), []byte(rec.Name)); err != nil {
			return err
		}
		return putJSON(b, []byte(rec.Name), rec)
	})
	if err != nil {
		s.log.Warn("login refused", "key", key, "err", err)
	}
	return rec.Technician, err
}

// TechnicianByKey returns the technician a key is bound to.
func (s *Store) TechnicianByKey(key string) (wire.Technician, error) {
	var rec Technician
	err := s.db.View(func(tx *bolt.Tx) error {
		name := tx.Bucket(bktTechKeys).Get([]byte(key))
		if name == nil {
			return ErrNotFound
		}
		found, err := getJSON(tx.Bucket(bktTechnicians), name, &rec)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	return rec.Technician, err
}

// Technicians lists technicians by name.
func (s *Store) Technicians() ([]wire.Technician, error) {
	var out []wire.Technician
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktTechnicians).ForEach(func(k, _ []byte) error {
			var rec Technician
			if _, err := getJSON(tx.Bucket(bktTechnicians), k, &rec); err != nil {
				return err
			}
			out = append(out, rec.Technician)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
