// Package installtest holds the checks that the install tests of both
// readymesh daemons share: sessiond's, through systemd and launchd, and
// the broker's, through systemd. Each test installs into a temporary root
// and then asks the same questions of the file system (is the binary
// there with its mode, did uninstall remove the unit, did it keep the
// key); one copy of the answers keeps the checks and their messages
// alike, whichever daemon's test fails.
//
// Only tests import it.
package installtest

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// Mode is the permission bits of path; a path that cannot be read fails
// the test at once.
func Mode(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// File fails t unless path (named what in the message: the installed
// binary, the unit on disk) holds want and, where perm is not zero, has
// the mode perm.
func File(t testing.TB, what, path string, want []byte, perm os.FileMode) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s %s: %v", what, path, err)
		return
	}
	if !bytes.Equal(raw, want) {
		t.Errorf("%s %s holds\n%s\nwant\n%s", what, path, raw, want)
	}
	if perm != 0 && Mode(t, path) != perm {
		t.Errorf("%s %s has mode %04o, want %04o", what, path, Mode(t, path), perm)
	}
}

// Gone fails t for each of paths that is still there after what was
// done (an uninstall, a failed start).
func Gone(t testing.TB, after string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after %s (%v)", p, after, err)
		}
	}
}

// Kept fails t for each of paths that is not there after what was done
// (an uninstall without --purge keeps the key).
func Kept(t testing.TB, after string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s went with %s: %v", p, after, err)
		}
	}
}
