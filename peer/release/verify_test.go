package release

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
)

// signed returns manifest and its signature by key, as Sign makes them.
func signed(t testing.TB, key SecretKey, manifest []byte) string {
	t.Helper()
	r := minisign.NewReader(bytes.NewReader(manifest))
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	return string(r.SignWithComments(key.key, "readymesh release 0.3.0", "test"))
}

func TestVerify(t *testing.T) {
	pub := testKey(t).Public()
	manifest := manifestJSON(t, nil)
	sig := signed(t, testKey(t), manifest)
	badManifest := manifestJSON(t, func(m map[string]any) { m["format"] = "readymesh-release/0" })

	lines := strings.Split(sig, "\n")
	otherComment := strings.Join([]string{lines[0], lines[1], "trusted comment: readymesh release 9.9.9", lines[3], ""}, "\n")
	otherUntrusted := strings.Join([]string{"untrusted comment: anything", lines[1], lines[2], lines[3], ""}, "\n")

	tests := []struct {
		name      string
		key       PublicKey
		manifest  []byte
		signature string
		want      error // nil: verifies
	}{
		{"good", pub, manifest, sig, nil},
		{"good, CRLF signature", pub, manifest, strings.ReplaceAll(sig, "\n", "\r\n"), nil},
		{"untrusted comment changed", pub, manifest, otherUntrusted, nil},
		{"trusted comment changed", pub, manifest, otherComment, ErrBadSignature},
		{"manifest with a byte more", pub, append(bytes.Clone(manifest), ' '), sig, ErrBadSignature},
		{"manifest cut", pub, manifest[:len(manifest)-1], sig, ErrBadSignature},
		{"other key", otherKey(t).Public(), manifest, sig, ErrWrongKey},
		{"signed by the other key", pub, manifest, signed(t, otherKey(t), manifest), ErrWrongKey},
		{"empty signature", pub, manifest, "", ErrBadSignature},
		{"not a signature", pub, manifest, "untrusted comment: x\nhello\ntrusted comment: y\nworld\n", ErrBadSignature},
		{"three lines", pub, manifest, strings.Join(lines[:3], "\n"), ErrBadSignature},
		{"huge signature", pub, manifest, sig + strings.Repeat("A", MaxSignature), ErrBadSignature},
		{"signed but malformed", pub, badManifest, signed(t, testKey(t), badManifest), ErrMalformed},
	}
	for _, tt := range tests {
		m, err := Verify(tt.key, tt.manifest, tt.signature)
		if tt.want == nil {
			if err != nil || m.Version != "0.3.0" {
				t.Errorf("%s: Verify = %+v, %v; want the manifest", tt.name, m, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: Verify = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := Verify(PublicKey{}, manifest, sig); err == nil {
		t.Error("Verify with no key accepted the release")
	}
}

// TestVerifyEveryByteCounts changes each byte of a signed manifest in
// turn: none of the changes verifies.
func TestVerifyEveryByteCounts(t *testing.T) {
	pub := testKey(t).Public()
	manifest := manifestJSON(t, nil)
	sig := signed(t, testKey(t), manifest)
	for i := range manifest {
		tampered := bytes.Clone(manifest)
		tampered[i] ^= 0x01
		if _, err := Verify(pub, tampered, sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("manifest with byte %d changed (%q): Verify = %v, want ErrBadSignature", i, tampered[i], err)
		}
	}
}

// TestVerifyMinisignToolSignatures verifies a manifest signed in the form
// the minisign tool writes: its .pub file, its comments, and both of its
// algorithms (pre-hashed, its default since 0.10, and the legacy one).
// The vector in testdata was made with aead.dev/minisign, whose format
// is the tool's.
func TestVerifyMinisignToolSignatures(t *testing.T) {
	dir := filepath.Join("testdata", "minisign-tool")
	key, err := ParsePublicKey(readFile(t, filepath.Join(dir, "minisign.pub")))
	if err != nil {
		t.Fatal(err)
	}
	manifest := []byte(readFile(t, filepath.Join(dir, "manifest.json")))
	for _, name := range []string{"manifest.json.minisig", "manifest.json.legacy.minisig"} {
		sig := readFile(t, filepath.Join(dir, name))
		m, err := Verify(key, manifest, sig)
		if err != nil {
			t.Errorf("%s: Verify = %v", name, err)
			continue
		}
		if m.Version != "0.3.0" || len(m.Binaries) != 2 {
			t.Errorf("%s: manifest %+v", name, m)
		}
		if id, err := SignatureKeyID(sig); err != nil || id != key.ID() {
			t.Errorf("%s: SignatureKeyID = %s, %v; want %s", name, id, err, key.ID())
		}
		if _, err := Verify(testKey(t).Public(), manifest, sig); !errors.Is(err, ErrWrongKey) {
			t.Errorf("%s: Verify with another key = %v, want ErrWrongKey", name, err)
		}
	}
	// The pre-hashed signature is what Sign writes too.
	var s minisign.Signature
	if err := s.UnmarshalText([]byte(readFile(t, filepath.Join(dir, "manifest.json.minisig")))); err != nil || s.Algorithm != minisign.HashEdDSA {
		t.Errorf("testdata's manifest.json.minisig: algorithm %#x, %v; want pre-hashed", s.Algorithm, err)
	}
}

func TestLoadDirRefusesWhatPublishCannotUse(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   string
	}{
		{"no manifest", func(t *testing.T, dir string) { remove(t, filepath.Join(dir, ManifestFile)) }, "no such file"},
		{"no signature", func(t *testing.T, dir string) { remove(t, filepath.Join(dir, SignatureFile)) }, "no such file"},
		{"signature not minisign", func(t *testing.T, dir string) { write(t, filepath.Join(dir, SignatureFile), "hello") }, "not a minisign signature"},
		{"binary gone", func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "sessiond-linux-amd64")) }, "the manifest names linux/amd64"},
		{"binary grew", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "sessiond-linux-amd64"), "longer than before, longer")
		}, "it changed after signing"},
		{"manifest malformed", func(t *testing.T, dir string) { write(t, filepath.Join(dir, ManifestFile), "{}") }, "malformed manifest"},
		{"manifest huge", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, ManifestFile), strings.Repeat(" ", MaxManifest+1))
		}, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeBinaries(t, dir, "linux/amd64")
			if _, err := Sign(dir, testKey(t), SignOptions{Version: "0.3.0"}); err != nil {
				t.Fatal(err)
			}
			tt.change(t, dir)
			if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadDir = %v, want %q", err, tt.want)
			}
		})
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func write(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
