package identity

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenAccessListRefused: a file every user may read (win.ini, which
// Windows and Wine both leave readable to all) is refused as a key file,
// before it is read.
func TestOpenAccessListRefused(t *testing.T) {
	path := filepath.Join(os.Getenv("SystemRoot"), "win.ini")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no %s to check: %v", path, err)
	}
	err = checkPrivate(path, fi)
	if !errors.Is(err, ErrInsecureKey) {
		t.Fatalf("checkPrivate(%s) = %v, want ErrInsecureKey", path, err)
	}
	t.Log(err)
}
