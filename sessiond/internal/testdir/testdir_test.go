package testdir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestNew: the directory and everything made in it are gone once the
// test that asked for it has ended.
func TestNew(t *testing.T) {
	var dir string
	t.Run("user", func(t *testing.T) {
		dir = New(t)
		if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"x", "a/y", "a/b/z"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after its test ended (%v)", dir, err)
	}
}
