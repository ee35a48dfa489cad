package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker"
	"github.com/readymesh/readymesh/broker/backup"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// The parts of a backup are laid down under the broker's own file names.
func TestPartNames(t *testing.T) {
	if backup.StorePart != broker.StoreFile || backup.KeyPart != broker.KeyFile {
		t.Errorf("parts %s, %s; the broker's files are %s, %s", backup.StorePart, backup.KeyPart, broker.StoreFile, broker.KeyFile)
	}
}

// stoppedBroker is a data directory as a stopped broker leaves it: a store
// with machines, a key and broker.json.
func stoppedBroker(t *testing.T, machines int) (dir, peerID string) {
	t.Helper()
	dir = t.TempDir()
	st, err := store.Open(store.Config{Path: filepath.Join(dir, broker.StoreFile)})
	if err != nil {
		t.Fatal(err)
	}
	if err := fleettest.Seed(st, "acme", machines); err != nil {
		t.Fatal(err)
	}
	st.Close()
	k, _, err := identity.LoadOrCreate(filepath.Join(dir, broker.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	info := `{"peer_id":"` + k.ID.String() + `","bridge_addrs":[],"name":"eu-1"}`
	if err := os.WriteFile(filepath.Join(dir, broker.InfoFile), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, k.ID.String()
}

// TestBackupStoppedBroker backs up a data directory no broker runs on and
// restores it: the store, the key and the summary match.
func TestBackupStoppedBroker(t *testing.T) {
	dir, peerID := stoppedBroker(t, 7)
	out := filepath.Join(t.TempDir(), "eu-1.backup")
	line, err := runBackup(context.Background(), dir, out, true)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	for _, want := range []string{"backed up broker eu-1 (" + peerID + ") to " + out, "7 machines", "key included", "sha256 ", "from the stopped broker's store file"} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "\n") {
		t.Errorf("summary is more than one line: %q", line)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	// The backup file first, flags after, as the README writes it.
	if err := restoreCmd([]string{out, "--data", restored}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	k, err := identity.Load(filepath.Join(restored, broker.KeyFile))
	if err != nil || k.ID.String() != peerID {
		t.Fatalf("restored key: %v, %v; want peer %s", k, err, peerID)
	}
	info, err := store.CheckBackup(filepath.Join(restored, broker.StoreFile))
	if err != nil || info.Machines != 7 {
		t.Fatalf("restored store: %+v, %v", info, err)
	}

	// Restoring again onto it is refused.
	if _, err := runRestore(out, restored); !errors.Is(err, backup.ErrOccupied) {
		t.Errorf("second restore: %v, want ErrOccupied", err)
	}
}

func TestBackupNoKey(t *testing.T) {
	dir, _ := stoppedBroker(t, 2)
	out := filepath.Join(t.TempDir(), "b")
	line, err := runBackup(context.Background(), dir, out, false)
	if err != nil || !strings.Contains(line, "key left out") {
		t.Fatalf("backup --no-key: %q, %v", line, err)
	}
	text, err := runRestore(out, filepath.Join(t.TempDir(), "r"))
	if err != nil || !strings.Contains(text, "new identity") {
		t.Fatalf("restore: %q, %v", text, err)
	}
}

func TestBackupRefusals(t *testing.T) {
	empty := t.TempDir()
	if _, err := runBackup(context.Background(), empty, filepath.Join(t.TempDir(), "b"), true); err == nil || !strings.Contains(err.Error(), "holds no broker store") {
		t.Errorf("backup of an empty directory: %v", err)
	}
	dir, _ := stoppedBroker(t, 1)
	os.Remove(filepath.Join(dir, broker.KeyFile))
	if _, err := runBackup(context.Background(), dir, filepath.Join(t.TempDir(), "b"), true); err == nil {
		t.Error("backup with the key but no key file succeeded")
	}
	for _, args := range [][]string{{"--data", dir}, {"--out", "x", "extra"}} {
		if err := backupCmd(args); !errors.Is(err, errUsage) {
			t.Errorf("backup %q: %v, want a usage error", args, err)
		}
	}
	for _, args := range [][]string{{"file"}, {"--data", dir}, {"a", "b", "--data", dir}} {
		if err := restoreCmd(args); !errors.Is(err, errUsage) {
			t.Errorf("restore %q: %v, want a usage error", args, err)
		}
	}
}

// TestBackupRunningBroker backs up a broker while it serves: through its
// control socket (its store is locked), naming the running broker.
func TestBackupRunningBroker(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.New(broker.TestConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- b.Run(ctx, func(wire.BrokerInfo, string) { close(ready) })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("broker did not stop")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("broker: %v", err)
	}
	out := filepath.Join(t.TempDir(), "live.backup")
	line, err := runBackup(context.Background(), dir, out, true)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if !strings.Contains(line, "from the running broker") || !strings.Contains(line, b.ID()) {
		t.Errorf("summary %q", line)
	}
	if _, err := runRestore(out, filepath.Join(t.TempDir(), "r")); err != nil {
		t.Errorf("restore: %v", err)
	}
}
