//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSameOwner: a file root writes into a data directory owned by the
// broker's account ends up owned by that account, so the broker can read
// it when it next starts.
func TestSameOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give a file away: run as root to test it")
	}
	dir := t.TempDir()
	const uid, gid = 65534, 65534 // nobody/nogroup
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.credential")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sameOwner(path, dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
		t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
}
