package localdb

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// bkt is the bucket of single records (enrolment, sequence, last check-in,
// consent, history); grants and jobs have buckets of their own.
var bkt = []byte("agent")

// ErrLocked is returned (wrapped) by Open when another process holds the
// database: an agent runs on the state directory.
var ErrLocked = errors.New("is locked: is another sessiond running with this state directory?")

// DB is the agent's local database.
type DB struct {
	db *bolt.DB
}

// Open opens or creates the database file at path. Only one process may
// hold it: a second agent on the same state directory is refused.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("localdb: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("localdb: %s %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("localdb: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bkt)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("localdb: init: %w", err)
	}
	return &DB{db: db}, nil
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// put stores v as JSON under key in the agent bucket.
func (d *DB) put(key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("localdb: encode %s: %w", key, err)
	}
	if err := d.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bkt).Put(key, raw) }); err != nil {
		return fmt.Errorf("localdb: put %s: %w", key, err)
	}
	return nil
}

// get decodes the JSON under key in the agent bucket into v; it reports
// false if there is none.
func (d *DB) get(key []byte, v any) (bool, error) {
	var raw []byte
	d.db.View(func(tx *bolt.Tx) error {
		raw = append(raw, tx.Bucket(bkt).Get(key)...)
		return nil
	})
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("localdb: decode %s: %w", key, err)
	}
	return true, nil
}
