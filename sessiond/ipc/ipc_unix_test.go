//go:build !windows

package ipc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
)

// TestSocketFile: the socket is mode 0600 in the state directory, and a
// socket file a crashed agent left behind does not stop the next one.
func TestSocketFile(t *testing.T) {
	dir := testdir.New(t)
	stale := filepath.Join(dir, SocketFile)
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(dir)
	if err != nil {
		t.Fatalf("Listen over a stale socket file: %v", err)
	}
	defer ln.Close()
	fi, err := os.Stat(stale)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", fi.Mode())
	}
	if addr, _ := Address(dir); addr != stale {
		t.Errorf("Address = %s, want %s", addr, stale)
	}
}
