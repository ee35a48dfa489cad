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

	"github.com/readymesh/readymesh/peer/wire"
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
	bktAudit       = []byte("audit")
	bktJobs        = []byte("jobs")
	bktCasts       = []byte("transcripts")
	bktCastOrder   = []byte("transcript_order")
	bktRemovals    = []byte("removals")
	bktReleases    = []byte("releases")
	bktRollouts    = []byte("rollouts")
	bktPolicies    = []byte("policies")
	bktBlobs       = []byte("blobs")     // not replicated: see blobs.go
	bktBlobMeta    = []byte("blob_meta") // not replicated

	allBuckets = [][]byte{bktMeta, bktClients, bktTokens, bktMachines, bktNames,
		bktSnapshots, bktHistory, bktTechnicians, bktTechKeys, bktLogins, bktAudit, bktCasts, bktCastOrder, bktJobs, bktRemovals, bktReleases, bktRollouts,
		bktPolicies, bktBlobs, bktBlobMeta}

	keySchema    = []byte("schema")
	keyAdminHash = []byte("admin_hash") // schema 1 only
	keyAdmin     = []byte("admin")      // the AdminRecord
)

// schemaVersion is the layout this package reads and writes. Schema 1 (no
// clocks, no tombstones) is migrated in place by Open (see migrate.go).
const schemaVersion = "2"

// Defaults for Config's zero values.
const (
	DefaultBroker       = "local"
	DefaultMaxClockSkew = time.Minute
	DefaultTombstoneTTL = 30 * 24 * time.Hour
)

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

	// OnCommit, if set, is called by the writer after each committed
	// transaction, so readers that show the store (the web console's
	// event streams) know to look again. It must return at once.
	OnCommit func()

	// Broker is this broker's name in the cluster: the origin stamped on
	// every clock it writes and its entry in every token's use counter. It
	// must be unique among the brokers sharing records (two brokers with
	// one name can each spend the same use of a token) and must satisfy
	// wire.ValidName. Renaming a broker is safe; reusing a name for a
	// broker that lost its disk is safe only once it has caught up.
	// Empty means "local".
	Broker string
	// Now is the physical clock under the hybrid logical clock, and the
	// time against which tombstone expiry and clock skew are judged. Nil
	// means time.Now; tests may pin it.
	Now func() time.Time
	// MaxClockSkew is how far ahead of Now an imported record's clock,
	// check-in time or last_seen may be. Later records are deferred, not
	// stored: a broker with a fast clock would otherwise win every
	// conflict and pin last_seen in the future. Larger values tolerate
	// worse clocks across the cluster. Zero means 1 minute.
	MaxClockSkew time.Duration
	// TombstoneTTL is how long a deletion is remembered. A tombstone older
	// than this is dropped (PurgeTombstones, and at Open), so a broker
	// that was away longer must rejoin with an empty disk, or it would
	// bring deleted records back. Zero means 30 days.
	TombstoneTTL time.Duration
	// MaxSnapshot bounds an imported snapshot in bytes. It should equal
	// the limit on check-ins (the broker's --max-snapshot) on every
	// broker, or a larger snapshot stored on one is refused by another.
	// Zero means wire.MaxSnapshot (1 MiB).
	MaxSnapshot int

	// OnRevoke, if set, is called by the writer after a commit that ended
	// someone's access: a technician disabled or removed, a machine
	// removed, by this broker or by a record imported from another. The
	// broker ends what the revoked party holds open (see Revoked). It
	// must return at once.
	OnRevoke func(Revoked)
}

// Store is the broker's durable state. It is safe for concurrent use.
type Store struct {
	// Immutable after Open.
	db       *bolt.DB
	log      *slog.Logger
	histN    int
	name     string // Config.Broker
	now      func() time.Time
	skew     time.Duration
	tombTTL  time.Duration
	maxSnap  int
	onCommit func()
	onRevoke func(Revoked)

	refusals refusalLog // warnings of refused replicated releases

	closed sync.Once // makes Close run once

	// The writer goroutine (see writer.go) owns every write, and clock.
	ops     chan *op      // unbuffered: a send succeeds only when the writer takes it
	quit    chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer has exited
	clock   hlc

	// mu guards all following fields, which hold what has been committed.
	// Only the writer (and Open, before the writer starts) changes them;
	// readers take it shared.
	mu       sync.RWMutex
	machines map[string]*Machine      // the machine records
	idx      *index                   // every record's version, and the digest
	policies map[string]*PolicyRecord // the policies set (no tombstones), by scope
}

// Open opens or creates the store at cfg.Path, migrates a schema 1 file,
// drops expired tombstones and loads the machine index and the digest.
func Open(cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("store: Config.Path is empty")
	}
	if cfg.Broker == "" {
		cfg.Broker = DefaultBroker
	}
	if err := wire.ValidName("broker name", cfg.Broker); err != nil {
		return nil, fmt.Errorf("store: Config.Broker: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: 5 * time.Second, InitialMmapSize: initialMmapSize})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	}
	s := &Store{db: db, log: cfg.Logger, histN: cfg.HistoryLimit, name: cfg.Broker, now: cfg.Now,
		skew: cfg.MaxClockSkew, tombTTL: cfg.TombstoneTTL, maxSnap: cfg.MaxSnapshot, onCommit: cfg.OnCommit, onRevoke: cfg.OnRevoke,
		machines: map[string]*Machine{}, idx: newIndex(), policies: map[string]*PolicyRecord{},
		ops: make(chan *op), quit: make(chan struct{}), stopped: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.histN <= 0 {
		s.histN = 100
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.skew <= 0 {
		s.skew = DefaultMaxClockSkew
	}
	if s.tombTTL <= 0 {
		s.tombTTL = DefaultTombstoneTTL
	}
	if s.maxSnap <= 0 {
		s.maxSnap = wire.MaxSnapshot
	}
	s.clock = hlc{origin: s.name, now: s.now}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	go s.run()
	if _, err := s.PurgeTombstones(); err != nil {
		s.Close()
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
		case string(v) == "1":
			return s.migrate1(tx)
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %s, this broker reads %s", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: init: %w", err)
	}
	if err := s.db.View(s.load); err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	return nil
}

// load reads every record's version into the index, the machine records
// into memory, and moves the clock past every clock stored.
func (s *Store) load(tx *bolt.Tx) error {
	err := tx.Bucket(bktMachines).ForEach(func(k, v []byte) error {
		m := new(Machine)
		if err := json.Unmarshal(v, m); err != nil {
			return fmt.Errorf("machine %s: %w", k, err)
		}
		s.machines[m.ID] = m
		s.idx.set(machineVersion(m))
		return nil
	})
	if err != nil {
		return err
	}
	return forEachControl(tx, func(k Key, rec any, v Version) error {
		s.idx.set(v)
		if p, ok := rec.(*PolicyRecord); ok && p.exists() {
			s.policies[p.Scope] = p
		}
		st := stampOf(rec)
		s.clock.observe(st.Born)
		s.clock.observe(st.Clock)
		return nil
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
