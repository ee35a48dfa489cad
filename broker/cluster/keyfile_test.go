package cluster

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadKeyFile(t *testing.T) {
	k16 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	k32 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	k20 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 20))
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		keys       int    // keys wanted, if no error
		err        string // substring of the error wanted
	}{
		{"one key", k32 + "\n", 0o600, 1, ""},
		{"two keys, comments, blanks", "# primary\n" + k32 + "\n\n" + k16 + "\n", 0o600, 2, ""},
		{"no newline at end", k16, 0o400, 1, ""},
		{"bad base64", "not base64!\n", 0o600, 0, "line 1: not base64"},
		{"wrong length", k32 + "\n" + k20 + "\n", 0o600, 0, "line 2: key is 20 bytes; want 16, 24 or 32"},
		{"empty", "# nothing\n", 0o600, 0, "no keys"},
		{"group readable", k32 + "\n", 0o640, 0, "has mode 0640: group or others can access it; run chmod 600"},
		{"world readable", k32 + "\n", 0o644, 0, "has mode 0644"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gossip.key")
			if err := os.WriteFile(path, []byte(tc.body), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			keys, err := LoadKeyFile(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrKeyFile) {
					t.Fatalf("got %v, want an ErrKeyFile containing %q", err, tc.err)
				}
				return
			}
			if err != nil || len(keys) != tc.keys {
				t.Fatalf("got %d keys, %v", len(keys), err)
			}
		})
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrKeyFile) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadKeyFile(t.TempDir()); !errors.Is(err, ErrKeyFile) {
		t.Errorf("directory: %v", err)
	}
}
