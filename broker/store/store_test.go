package store

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// Everything written before a restart is there after it, byte for byte,
// and the in-memory index rebuilt from the file equals the one that was
// kept up to date in memory.
func TestReopenKeepsEverything(t *testing.T) {
	s, cfg := enrolled(t, 3, "m1", "m2", "m3")
	mustClient(t, s, "globex")
	mustToken(t, s, "globex", 5, t0.Add(time.Hour))
	for seq := uint64(1); seq <= 4; seq++ {
		mustCheckIn(t, s, checkIn("m1", seq, testSnapshot("web1", int(seq))), t0.Add(time.Duration(seq)*time.Minute))
	}
	mustCheckIn(t, s, checkIn("m2", 7, testSnapshot("web2", 7)), t0)
	if err := s.SetLastSeen(map[string]time.Time{"m3": t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAdminHash(wire.HashSecret("admin"), t0); err != nil {
		t.Fatal(err)
	}
	login := wire.HashSecret("login")
	if err := s.CreateTechnician(techArgs("alice", "acme"), login, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(login, "12D3KooWalice", false, t0); err != nil {
		t.Fatal(err)
	}
	clients, _ := s.Clients()
	techs, _ := s.Technicians()
	before := capture(t, s)

	s = reopen(t, s, cfg)
	assertUnchanged(t, s, before)
	if got, _ := s.Clients(); !sameJSON(got, clients) {
		t.Errorf("Clients after reopen = %s, want %s", jsonOf(got), jsonOf(clients))
	}
	if got, _ := s.Technicians(); !sameJSON(got, techs) {
		t.Errorf("Technicians after reopen = %s, want %s", jsonOf(got), jsonOf(techs))
	}
}

func TestOpenRefuses(t *testing.T) {
	if _, err := Open(Config{}); err == nil {
		t.Error("Open with an empty path succeeded")
	}

	// A file written by a broker with a newer schema is not touched.
	path := filepath.Join(t.TempDir(), "broker.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bktMeta)
		if err != nil {
			return err
		}
		return b.Put(keySchema, []byte("3"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(Config{Path: path}); err == nil {
		s.Close()
		t.Fatal("Open of a schema 3 file succeeded")
	}
	// The file is closed again: it can be opened and still has schema 3.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("file still locked after a refused Open: %v", err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bktMachines) != nil {
			t.Error("refused Open created buckets")
		}
		return nil
	})
}

// After Close the store has left no goroutine behind, Close can be called
// again, and writes fail instead of hanging.
func TestCloseLeavesNothingRunning(t *testing.T) {
	base := runtime.NumGoroutine()
	cfg := testConfig(t, 0)
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustClient(t, s, "acme")
	hash := mustToken(t, s, "acme", 16, t0.Add(time.Hour))
	var wg sync.WaitGroup
	for i := range 16 {
		id := fmt.Sprintf("m%d", i)
		mustEnroll(t, s, hash, id, id)
		wg.Go(func() {
			for seq := uint64(1); seq <= 3; seq++ {
				if _, err := s.CheckIn(checkIn(id, seq, testSnapshot(id, int(seq))), t0); err != nil {
					t.Error(err)
				}
			}
			s.SetLastSeen(map[string]time.Time{id: t0})
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.CheckIn(checkIn("m1", 9, testSnapshot("m1", 9)), t0); err == nil {
		t.Error("CheckIn after Close succeeded")
	}
	if _, err := s.Enroll(EnrollRequest{TokenHash: hash, MachineID: "late", Name: "late", Now: t0}); err == nil {
		t.Error("Enroll after Close succeeded")
	}

	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Close, %d before Open:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}
