package update

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
)

// TestLock: a second lock of one state directory is refused while the
// first is held, and granted once it is released; another state
// directory is not affected.
func TestLock(t *testing.T) {
	state := testdir.New(t)
	l, err := TakeLock(state, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TakeLock(state, 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	other, err := TakeLock(filepath.Join(state, "other"), 0)
	if err != nil {
		t.Fatalf("another state directory: %v", err)
	}
	other.Release()
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := TakeLock(state, 0)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.Release()
}
