package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeFunc is an io.Writer made of a function.
type writeFunc func(p []byte) (int, error)

func (f writeFunc) Write(p []byte) (int, error) { return f(p) }

// TestBackupWhileWriting takes a backup while check-ins commit: one
// check-in commits in the middle of writing the snapshot (the writer does
// not wait for the backup), and the snapshot holds exactly what was
// committed when Backup began: the check-ins before, not the one during.
func TestBackupWhileWriting(t *testing.T) {
	ids := []string{"m1", "m2", "m3"}
	s, _ := enrolled(t, 0, ids...)
	// Enough churn that later commits find free pages, as a store that
	// has served a while does.
	for seq := uint64(1); seq <= 20; seq++ {
		for _, id := range ids {
			mustCheckIn(t, s, checkIn(id, seq, testSnapshot(id, int(seq))), t0)
		}
	}

	path := filepath.Join(t.TempDir(), "snapshot.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var once sync.Once
	var during error
	var duringTook time.Duration
	w := writeFunc(func(p []byte) (int, error) {
		once.Do(func() {
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				_, err := s.CheckIn(checkIn("m1", 21, testSnapshot("m1", 21)), t0)
				done <- err
			}()
			select {
			case during = <-done:
			case <-time.After(10 * time.Second):
				during = errors.New("the check-in did not commit within 10s while the backup was being written")
			}
			duringTook = time.Since(start)
		})
		return f.Write(p)
	})
	n, err := s.Backup(w)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if during != nil {
		t.Fatalf("check-in during the backup: %v", during)
	}
	t.Logf("a check-in committed in %v while the backup held its read transaction", duringTook)
	if fi, err := f.Stat(); err != nil || fi.Size() != n {
		t.Fatalf("Backup reported %d bytes, the file has %v (%v)", n, fi.Size(), err)
	}
	f.Close()

	info, err := CheckBackup(path)
	if err != nil {
		t.Fatalf("CheckBackup of a fresh backup: %v", err)
	}
	if info.Machines != len(ids) || info.Schema != schemaVersion || info.Size != n {
		t.Errorf("CheckBackup = %+v, want %d machines, schema %s, %d bytes", info, len(ids), schemaVersion, n)
	}
	if m, _ := s.Machine("m1"); m.LastCheckIn.Seq != 21 {
		t.Fatalf("live store has m1 at seq %d, want 21", m.LastCheckIn.Seq)
	}
	restored := openStore(t, Config{Path: path})
	for _, id := range ids {
		m, ok := restored.Machine(id)
		if !ok || m.LastCheckIn == nil || m.LastCheckIn.Seq != 20 {
			t.Errorf("restored %s: %+v, want check-in 20 (the last before the backup began)", id, m.LastCheckIn)
		}
	}
}

// TestBackupFile backs up a store no one has open, and refuses one a
// running store holds, saying why, without waiting long.
func TestBackupFile(t *testing.T) {
	s, cfg := enrolled(t, 0, "m1", "m2")
	mustCheckIn(t, s, checkIn("m1", 1, testSnapshot("m1", 1)), t0)

	start := time.Now()
	_, err := BackupFile(cfg.Path, &bytes.Buffer{})
	if !errors.Is(err, ErrStoreInUse) {
		t.Fatalf("BackupFile of an open store: %v, want ErrStoreInUse", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("BackupFile waited %v for the lock", took)
	}
	s.Close()

	before := fileSum(t, cfg.Path)
	path := filepath.Join(t.TempDir(), "offline.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := BackupFile(cfg.Path, f)
	f.Close()
	if err != nil {
		t.Fatalf("BackupFile: %v", err)
	}
	if after := fileSum(t, cfg.Path); after != before {
		t.Error("BackupFile changed the store file")
	}
	info, err := CheckBackup(path)
	if err != nil || info.Machines != 2 || info.Size != n {
		t.Fatalf("CheckBackup = %+v, %v; want 2 machines, %d bytes", info, err, n)
	}
	if m, ok := openStore(t, Config{Path: path}).Machine("m1"); !ok || m.LastCheckIn == nil || m.LastCheckIn.Seq != 1 {
		t.Errorf("offline backup: m1 = %+v, want check-in 1", m.LastCheckIn)
	}

	if _, err := BackupFile(filepath.Join(t.TempDir(), "none.db"), &bytes.Buffer{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("BackupFile of a missing file: %v, want not exist", err)
	}
}

func TestBackupAfterClose(t *testing.T) {
	s, _ := newStore(t)
	s.Close()
	if _, err := s.Backup(&bytes.Buffer{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Backup after Close: %v, want ErrClosed", err)
	}
}

// TestCheckBackupRefuses: files that are not a usable snapshot are
// refused with what is wrong, and left as they were.
func TestCheckBackupRefuses(t *testing.T) {
	s, _ := enrolled(t, 0, "m1")
	mustCheckIn(t, s, checkIn("m1", 1, testSnapshot("m1", 1)), t0)
	var good bytes.Buffer
	if _, err := s.Backup(&good); err != nil {
		t.Fatal(err)
	}
	goodPath := writeTemp(t, good.Bytes())
	if _, err := CheckBackup(goodPath); err != nil {
		t.Fatalf("CheckBackup of the good snapshot: %v", err)
	}
	pageSize := os.Getpagesize()

	tests := []struct {
		name string
		file func(t *testing.T) string
		want string
	}{
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none") }, "no such file"},
		{"empty", func(t *testing.T) string { return writeTemp(t, nil) }, ""},
		{"garbage", func(t *testing.T) string { return writeTemp(t, bytes.Repeat([]byte("not bbolt "), 2000)) }, "invalid"},
		{"truncated to half", func(t *testing.T) string { return writeTemp(t, good.Bytes()[:good.Len()/2]) }, "truncated"},
		{"truncated to one page short", func(t *testing.T) string {
			return writeTemp(t, good.Bytes()[:good.Len()-pageSize])
		}, "truncated"},
		{"wrong schema", func(t *testing.T) string {
			return boltFile(t, func(tx *bolt.Tx) error {
				b, _ := tx.CreateBucket(bktMeta)
				return b.Put(keySchema, []byte("9"))
			})
		}, "schema version 9"},
		{"no meta", func(t *testing.T) string {
			return boltFile(t, func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket([]byte("other"))
				return err
			})
		}, "not a broker store"},
		{"missing bucket", func(t *testing.T) string {
			return boltFile(t, func(tx *bolt.Tx) error {
				for _, name := range requiredBuckets {
					if !bytes.Equal(name, bktHistory) {
						tx.CreateBucket(name)
					}
				}
				return tx.Bucket(bktMeta).Put(keySchema, []byte(schemaVersion))
			})
		}, `bucket "history" is missing`},
		{"bad machine record", func(t *testing.T) string {
			return boltFile(t, func(tx *bolt.Tx) error {
				for _, name := range requiredBuckets {
					tx.CreateBucket(name)
				}
				tx.Bucket(bktMachines).Put([]byte("m1"), []byte("{not json"))
				return tx.Bucket(bktMeta).Put(keySchema, []byte(schemaVersion))
			})
		}, `machine "m1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.file(t)
			before := fileSum(t, path)
			_, err := CheckBackup(path)
			if err == nil {
				t.Fatal("CheckBackup accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckBackup: %v, want it to say %q", err, tc.want)
			}
			if after := fileSum(t, path); after != before {
				t.Error("CheckBackup changed the file")
			}
		})
	}
}

// boltFile makes a bbolt file filled by fill.
func boltFile(t *testing.T, fill func(tx *bolt.Tx) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "made.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fill); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fileSum is the SHA-256 of a file, or a marker when it does not exist.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(raw))
}
