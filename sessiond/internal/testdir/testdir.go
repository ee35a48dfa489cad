// Package testdir gives tests a temporary directory that can also be
// removed under Wine. Go 1.26's os.RemoveAll fails there ("unlinkat …:
// Invalid function", Wine 8 lacks the delete-on-close call it uses), so
// t.TempDir's cleanup fails every Windows test run under Wine; os.Remove
// works, so New's cleanup removes one name at a time, children first.
package testdir

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// New returns a new directory that is removed when the test ends.
func New(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var names []string
		filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
			names = append(names, path)
			return nil
		})
		slices.Reverse(names) // children before their directory
		for _, n := range names {
			if err := os.Remove(n); err != nil {
				t.Errorf("removing the test directory: %v", err)
			}
		}
	})
	return dir
}
