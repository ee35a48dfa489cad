package release

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

// FuzzParse feeds Parse bytes as a broker or an agent receives them. A
// manifest Parse accepts must survive encoding and parsing again
// unchanged, and a refusal must be ErrMalformed.
func FuzzParse(f *testing.F) {
	f.Add(manifestJSON(f, nil))
	f.Add([]byte(readFile(f, filepath.Join("testdata", "minisign-tool", "manifest.json"))))
	dir := f.TempDir()
	writeBinaries(f, dir, "linux/amd64", "windows/arm64", "darwin/arm64")
	if _, err := Sign(dir, testKey(f), SignOptions{Version: "1.2.0-rc.1", MinAgent: "1.0", Notes: "ünïcode\n", NextKey: otherKey(f).Public()}); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(readFile(f, filepath.Join(dir, ManifestFile))))
	f.Add([]byte(`{"format":"readymesh-release/1","version":"1","created":"2026-01-01T00:00:00+05:30","binaries":[{"platform":"linux/amd64","sha256":"` +
		"0000000000000000000000000000000000000000000000000000000000000000" + `","size":1}]}`))
	f.Add([]byte(`{"FORMAT":"readymesh-release/1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse refused with %v, not ErrMalformed", err)
			}
			return
		}
		b, err := m.encode()
		if err != nil {
			t.Fatalf("an accepted manifest does not encode: %v", err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("an accepted manifest, encoded, is refused: %v\n%s", err, b)
		}
		b2, err := again.encode()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("manifest changed through encode and Parse:\n%s\n%s", b, b2)
		}
	})
}
