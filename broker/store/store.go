package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bktMeta        = []byte("meta")
	bktClients     = []byte("clients")
	bktTokens      = []byte("tokens")
	bktMachines    = []byte("machines")
	bktNames       = []byte("names")
	bktSnapshots   = []byte("snapshots")
	bktHistory     = []byte("history")
	bktTechnicians = []byte("technicians")
	bktTechKeys    = []byte("techkeys")
	bktLogins      = []byte("logins")

	allBuckets = [][]byte{bktMeta, bktClients, bktTokens, bktMachines, bktNames,
		bktSnapshots, bktHistory, bktTechnicians, bktTechKeys, bktLogins}

	keySchema    = []byte("schema")
	keyAdminHash = []byte("admin_hash")
)

const schemaVersion = "1"

// Config configures a Store.
type Config struct {
	// Path is the bbolt file. It must not be empty; its directory is created
	// with mode 0700.
	Path string
	// HistoryLimit is how many check-in summaries are kept per machine.
	// Zero means 100.
	HistoryLimit int
	// BatchDelay is how long bbolt waits to group concurrent check-ins into
	// one transaction. Longer delays mean fewer fsyncs under load and more
	// latency for a lone agent. Zero means 2 ms.
	BatchDelay time.Duration
	// Logger receives refusals and failures. Nil means discard.
	Logger *slog.Logger
}

// Store is the broker's durable state. It is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	log    *slog.Logger
	histN  int
	closed sync.Once

	mu       sync.RWMutex
	machines map[string]*Machine // mu guards; the in-memory index, updated after commit
}

// Open opens or creates the store at cfg.Path and loads the machine index.
func Open(cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("store: Config.Path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	}
	db.MaxBatchDelay = cfg.BatchDelay
	if db.MaxBatchDelay == 0 {
		db.MaxBatchDelay = 2 * time.Millisecond
	}
	// Batches are cut by time under load, not by a small size cap.
	db.MaxBatchSize = 4096
	s := &Store{db: db, log: cfg.Logger, histN: cfg.HistoryLimit, machines: map[string]*Machine{}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.histN <= 0 {
		s.histN = 100
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bktMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			return meta.Put(keySchema, []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %s, this broker reads %s", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: init: %w", err)
	}
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMachines).ForEach(func(k, v []byte) error {
			m := new(Machine)
			if err := json.Unmarshal(v, m); err != nil {
				return fmt.Errorf("store: machine %s: %w", k, err)
			}
			s.machines[m.ID] = m
			return nil
		})
	})
}

// Close closes the file. It is safe to call more than once.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() { err = s.db.Close() })
	return err
}

// remember updates the in-memory index after a commit, keeping the highest
// revision when two commits finish out of order.
func (s *Store) remember(m *Machine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.machines[m.ID]; old == nil || old.Rev < m.Rev {
		s.machines[m.ID] = m
	}
}

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode record %q: %w", key, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}
