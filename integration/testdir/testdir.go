// Package testdir gives tests a temporary directory that is removed after
// the test on every system the agent runs on, Wine included.
//
// testing.T.TempDir removes its directory with os.RemoveAll, which on
// Windows deletes through FileDispositionInformationEx. Wine 8 does not
// implement that information class and answers "Invalid function", so
// every test using TempDir fails in its cleanup there. Plain os.Remove
// uses DeleteFile, which Wine has.
package testdir

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// New returns a new directory for t, removed when t ends: t.TempDir
// except on Windows.
func New(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "windows" {
		return t.TempDir()
	}
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r == '*' || r == '?' || r == '"' || r == '<' || r == '>' || r == '|' {
			return '_'
		}
		return r
	}, t.Name())
	dir, err := os.MkdirTemp("", name+"-*")
	if err != nil {
		t.Fatalf("temporary directory: %v", err)
	}
	t.Cleanup(func() {
		if err := Remove(dir); err != nil {
			t.Errorf("remove the temporary directory: %v", err)
		}
	})
	return dir
}

// Remove deletes dir and everything below it, one entry at a time,
// deepest first.
func Remove(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Reverse(paths)
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}
