//go:build !windows

package service

import "testing"

// testDir is a directory removed when the test ends.
func testDir(t *testing.T) string { return t.TempDir() }
