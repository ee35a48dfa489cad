//go:build !windows

package identity

import (
	"fmt"
	"os"
)

// checkPrivate refuses a key file whose mode lets group or others read or
// write it.
func checkPrivate(path string, fi os.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; it must be readable only by its owner (chmod 600 %s)",
			ErrInsecureKey, path, perm, path)
	}
	return nil
}

// makePrivate does nothing: os.CreateTemp already made the file 0600.
func makePrivate(string) error { return nil }

func readKey(path string) ([]byte, error) { return os.ReadFile(path) }
