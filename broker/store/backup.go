package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Backups. A backup is the whole bbolt file as one read transaction sees
// it (Tx.WriteTo): every commit before the transaction began, nothing
// after, so every check-in acknowledged before Backup was called is in it.
// bbolt serves read transactions beside its one writer, so check-ins and
// every other write go on while the snapshot is written. One write can
// wait for it: a commit that has to grow the file past its current memory
// mapping takes the mapping's lock, which the backup's read transaction
// holds shared, so that commit waits until the backup ends (the mapping
// doubles each time up to 1 GiB). So Open maps initialMmapSize from the
// start, as etcd does for the same reason: until a store outgrows it, no
// commit waits for a backup.
//
// CheckBackup is the other half: it opens a snapshot file read-only and
// checks it is a store this build can open, without changing it.

// backupOpenTimeout is how long BackupFile and CheckBackup wait for a
// file's lock: a store held by a running broker stays locked, and saying
// so soon is better than waiting.
const backupOpenTimeout = time.Second

// initialMmapSize is the memory mapping Open starts with: address space,
// not memory (pages are read in as they are used, and the file grows only
// as data is written). 1 GiB holds a fleet of some 40,000 machines; past
// it bbolt grows the mapping in 1 GiB steps, and a commit that needs one
// while a backup runs waits for the backup. On Windows bbolt extends the
// file to the mapping's size, and 32-bit processes lack the address
// space, so there it stays bbolt's default.
var initialMmapSize = func() int {
	if runtime.GOOS == "windows" || strconv.IntSize == 32 {
		return 0
	}
	return 1 << 30
}()

// ErrStoreInUse is returned by BackupFile when another process (a running
// broker) holds the store.
var ErrStoreInUse = errors.New("the store is in use by another process")

// requiredBuckets are the buckets every schema 2 store has had since that
// schema began. Buckets added to schema 2 later (jobs, transcripts, …) are
// created by Open when missing, so a snapshot from an older build may
// lack them.
var requiredBuckets = [][]byte{bktMeta, bktClients, bktTokens, bktMachines, bktNames,
	bktSnapshots, bktHistory, bktTechnicians, bktTechKeys, bktLogins}

// BackupInfo describes a store snapshot.
type BackupInfo struct {
	// Schema is the store's schema version.
	Schema string `json:"schema"`
	// Machines is how many machine records it holds.
	Machines int `json:"machines"`
	// Size is the snapshot's size in bytes.
	Size int64 `json:"size"`
}

// Backup writes a consistent snapshot of the store to w while the store
// serves, and returns how many bytes it wrote. The snapshot is a bbolt
// file: written to disk as a broker's store file, Open opens it.
func (s *Store) Backup(w io.Writer) (int64, error) {
	n, err := writeSnapshot(s.db, w)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return n, ErrClosed
	}
	return n, err
}

// BackupFile writes a snapshot of the store file at path to w, as Backup
// does, for a store no broker has open. It opens the file read-only and
// changes nothing; a file a running broker holds is refused with
// ErrStoreInUse after a second.
func BackupFile(path string, w io.Writer) (int64, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: backupOpenTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, fmt.Errorf("store: backup %s: %w", path, ErrStoreInUse)
	}
	if err != nil {
		return 0, fmt.Errorf("store: backup: open %s: %w", path, err)
	}
	defer db.Close()
	return writeSnapshot(db, w)
}

// writeSnapshot writes db as one read transaction sees it, after checking
// that it holds a store of this build's schema.
func writeSnapshot(db *bolt.DB, w io.Writer) (int64, error) {
	var n int64
	err := db.View(func(tx *bolt.Tx) error {
		if err := checkSchema(tx); err != nil {
			return err
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// CheckBackup checks that the file at path is a complete store snapshot
// this build can open: a bbolt file no shorter than its pages claim, of
// this build's schema, holding the buckets a store needs, whose machine
// records decode and whose pages pass bbolt's consistency check. It opens
// the file read-only and changes nothing.
func CheckBackup(path string) (BackupInfo, error) {
	info, err := checkBackup(path)
	if err != nil {
		return info, fmt.Errorf("store: %s is not a usable store snapshot: %w", path, err)
	}
	return info, nil
}

func checkBackup(path string) (BackupInfo, error) {
	var info BackupInfo
	fi, err := os.Stat(path)
	if err != nil {
		return info, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: backupOpenTimeout})
	if err != nil {
		return info, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		// Every page below the high-water mark must be in the file: a
		// truncated copy would fault when a page past its end is read.
		if info.Size = tx.Size(); fi.Size() < info.Size {
			return fmt.Errorf("truncated: %d bytes, its pages need %d", fi.Size(), info.Size)
		}
		if err := checkSchema(tx); err != nil {
			return err
		}
		info.Schema = schemaVersion
		for _, name := range requiredBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("bucket %q is missing", name)
			}
		}
		if info.Machines, err = countMachines(tx); err != nil {
			return err
		}
		return firstCheckError(tx)
	})
	return info, err
}

// checkSchema refuses a file that is not a store of this build's schema.
func checkSchema(tx *bolt.Tx) error {
	meta := tx.Bucket(bktMeta)
	if meta == nil {
		return errors.New("no meta bucket: not a broker store")
	}
	switch v := meta.Get(keySchema); {
	case v == nil:
		return errors.New("no schema version: not a broker store")
	case string(v) != schemaVersion:
		return fmt.Errorf("schema version %s, this broker reads %s (a schema 1 store is migrated when a broker first opens it: run the broker once, then back it up)", v, schemaVersion)
	}
	return nil
}

// countMachines decodes every machine record, as Open does, and counts
// them.
func countMachines(tx *bolt.Tx) (int, error) {
	n := 0
	err := tx.Bucket(bktMachines).ForEach(func(k, v []byte) error {
		var m Machine
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("machine %q: %w", k, err)
		}
		n++
		return nil
	})
	return n, err
}

// firstCheckError runs bbolt's consistency check and returns its first
// finding. It reads every finding, so the checking goroutine ends.
func firstCheckError(tx *bolt.Tx) error {
	var first error
	for err := range tx.Check() {
		if first == nil {
			first = fmt.Errorf("consistency: %w", err)
		}
	}
	return first
}
