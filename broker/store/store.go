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
	// Logger receives refusals and failures. Nil means discard.
	Logger *slog.Logger
}

// Store is the broker's durable state. It is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	log    *slog.Logger
	histN  int
	closed sync.Once

	// The writer goroutine (see writer.go) owns all machine-record writes.
	ops     chan *op      // unbuffered: a send succeeds only when the writer takes it
	quit    chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer has exited

	mu       sync.RWMutex
	machines map[string]*Machine // mu guards; the committed machine records, written only by the writer
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
	s := &Store{db: db, log: cfg.Logger, histN: cfg.HistoryLimit, machines: map[string]*Machine{},
		ops: make(chan *op), quit: make(chan struct{}), stopped: make(chan struct{})}
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
	go s.run()
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

// Close stops the writer and closes the file. Writes already handed to the
// writer finish first; later ones get ErrClosed. It is safe to call more
// than once.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		// Order: stop taking writes, let the writer finish its batch, and
		// only then close the file under it.
		close(s.quit)
		<-s.stopped
		err = s.db.Close()
	})
	return err
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
