package service

// Run under Wine as ../../shared/TESTING.md describes:
//
//	WINEPREFIX=… WINEDEBUG=-all GOOS=windows go test -exec wine-stable ./sessiond/service/

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/windows"
)

// underWine reports whether the test runs under Wine, whose ntdll exports
// wine_get_version.
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

// testDir is a directory removed when the test ends. Not t.TempDir: Go
// 1.26's os.RemoveAll fails under Wine 8 ("unlinkat …: Invalid function")
// while os.Remove works, so the cleanup removes one name at a time.
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "servicetest")
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
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return dir
}
