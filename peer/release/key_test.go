package release

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"aead.dev/minisign"
)

// Keys made once per test binary: a signing key and another one.
var (
	testKeys = sync.OnceValues(func() ([2]SecretKey, error) {
		var ks [2]SecretKey
		for i := range ks {
			_, priv, err := minisign.GenerateKey(nil)
			if err != nil {
				return ks, err
			}
			ks[i] = SecretKey{key: priv}
		}
		return ks, nil
	})
)

func testKey(t testing.TB) SecretKey  { return keyN(t, 0) }
func otherKey(t testing.TB) SecretKey { return keyN(t, 1) }

func keyN(t testing.TB, i int) SecretKey {
	t.Helper()
	ks, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	return ks[i]
}

func TestParsePublicKey(t *testing.T) {
	pub := testKey(t).Public()
	line := pub.String()
	if !strings.HasPrefix(line, "RW") || len(line) != 56 {
		t.Fatalf("String() = %q, want a 56-character minisign key line", line)
	}
	tool, err := os.ReadFile(filepath.Join("testdata", "minisign-tool", "minisign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in string
		want     string // the key's line; "" when refused
	}{
		{"line", line, line},
		{"line with newline", line + "\n", line},
		{"pub file", pub.fileText(), line},
		{"pub file with CRLF", strings.ReplaceAll(pub.fileText(), "\n", "\r\n"), line},
		{"minisign tool's pub file", string(tool), strings.Split(string(tool), "\n")[1]},
		{"empty", "", ""},
		{"comment only", "untrusted comment: minisign public key 0011223344556677\n", ""},
		{"two keys", line + "\n" + line, ""},
		{"other comment", "comment: x\n" + line, ""},
		{"not base64", "RW!!", ""},
		{"truncated", line[:40], ""},
		{"secret key", "untrusted comment: minisign encrypted secret key\nRWQAAEIy" + strings.Repeat("A", 200), ""},
		{"too long", strings.Repeat(" ", 2000) + line, ""},
	}
	for _, tt := range tests {
		k, err := ParsePublicKey(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%s: ParsePublicKey = %s, want a refusal", tt.name, k)
		case tt.want != "" && err != nil:
			t.Errorf("%s: ParsePublicKey = %v", tt.name, err)
		case tt.want != "" && k.String() != tt.want:
			t.Errorf("%s: ParsePublicKey = %s, want %s", tt.name, k, tt.want)
		}
	}
}

func TestPublicKeyID(t *testing.T) {
	tool, err := os.ReadFile(filepath.Join("testdata", "minisign-tool", "minisign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePublicKey(string(tool))
	if err != nil {
		t.Fatal(err)
	}
	// The minisign tool names the key in the .pub file's comment.
	if want := strings.TrimPrefix(strings.Split(string(tool), "\n")[0], "untrusted comment: minisign public key "); k.ID() != want {
		t.Errorf("ID() = %s, want %s as the .pub file says", k.ID(), want)
	}
	hex16 := regexp.MustCompile(`^[0-9A-F]{16}$`)
	for _, sk := range []SecretKey{testKey(t), otherKey(t)} {
		if id := sk.Public().ID(); !hex16.MatchString(id) {
			t.Errorf("ID() = %q, want 16 upper-case hex digits", id)
		}
	}
	if keyID(0xab) != "00000000000000AB" {
		t.Errorf("keyID(0xab) = %s: small IDs keep their leading zeros", keyID(0xab))
	}
	if (PublicKey{}).ID() != "" || !(PublicKey{}).IsZero() || testKey(t).Public().IsZero() {
		t.Error("the zero PublicKey has an ID, or a real one is zero")
	}
	if !testKey(t).Public().Equal(testKey(t).Public()) || testKey(t).Public().Equal(otherKey(t).Public()) {
		t.Error("Equal does not tell keys apart")
	}
}

func TestKeygenUnencrypted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	pub, err := KeygenUnencrypted(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkKeyFiles(t, dir, pub)
	asked := false
	sk, err := ReadSecretKey(filepath.Join(dir, SecretKeyFile), func() (string, error) { asked = true; return "", nil })
	if err != nil || asked {
		t.Fatalf("ReadSecretKey = %v, asked for a password: %v; want the key, unasked", err, asked)
	}
	if !sk.Public().Equal(pub) {
		t.Errorf("the secret key's public key is %s, want %s", sk.Public().ID(), pub.ID())
	}
	if _, err := KeygenUnencrypted(dir); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("a second Keygen in the same dir = %v, want a refusal", err)
	}
	if again, err := ParsePublicKey(readFile(t, filepath.Join(dir, PublicKeyFile))); err != nil || !again.Equal(pub) {
		t.Errorf("release.pub after the refused Keygen = %v, %v: it was changed", again.ID(), err)
	}
}

// TestKeygenRefusesAHalfOverwrite checks that an existing release.pub
// alone blocks Keygen before any file is written.
func TestKeygenRefusesAHalfOverwrite(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, PublicKeyFile), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := KeygenUnencrypted(dir); err == nil {
		t.Fatal("Keygen overwrote release.pub")
	}
	if _, err := os.Stat(filepath.Join(dir, SecretKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Keygen left %s behind: %v", SecretKeyFile, err)
	}
}

func TestKeygenRefusesAnEmptyPassword(t *testing.T) {
	dir := t.TempDir()
	if _, err := Keygen(dir, ""); !errors.Is(err, ErrNoPassword) {
		t.Fatalf("Keygen(dir, \"\") = %v, want ErrNoPassword", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused Keygen wrote %d file(s)", len(entries))
	}
}

// TestKeygenEncrypted runs minisign's scrypt at its real cost (1 GiB,
// seconds per key derivation): three derivations.
func TestKeygenEncrypted(t *testing.T) {
	dir := t.TempDir()
	pub, err := Keygen(dir, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	checkKeyFiles(t, dir, pub)
	path := filepath.Join(dir, SecretKeyFile)
	if !minisign.IsEncrypted([]byte(readFile(t, path))) {
		t.Fatal("release.key is not encrypted")
	}
	if _, err := ReadSecretKey(path, nil); !errors.Is(err, ErrNoPassword) {
		t.Errorf("ReadSecretKey without a password = %v, want ErrNoPassword", err)
	}
	if _, err := ReadSecretKey(path, func() (string, error) { return "", nil }); !errors.Is(err, ErrNoPassword) {
		t.Errorf("ReadSecretKey with an empty password = %v, want ErrNoPassword", err)
	}
	// The two derivations left run side by side.
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		_, err := ReadSecretKey(path, func() (string, error) { return "wrong horse", nil })
		if err == nil || !strings.Contains(err.Error(), "wrong password") {
			t.Errorf("ReadSecretKey with a wrong password = %v", err)
		}
	})
	t.Run("right password", func(t *testing.T) {
		t.Parallel()
		sk, err := ReadSecretKey(path, func() (string, error) { return "correct horse", nil })
		if err != nil {
			t.Fatal(err)
		}
		if !sk.Public().Equal(pub) {
			t.Errorf("the decrypted key's public key is %s, want %s", sk.Public().ID(), pub.ID())
		}
	})
}

func TestReadSecretKeyRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	pub, err := KeygenUnencrypted(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"public key": pub.fileText(),
		"empty":      "",
		"text":       "hello\n",
		"huge":       strings.Repeat("A", 5000),
	} {
		path := filepath.Join(dir, "k")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSecretKey(path, nil); err == nil {
			t.Errorf("ReadSecretKey(%s) read a key", name)
		}
	}
	if _, err := ReadSecretKey(filepath.Join(dir, "missing"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadSecretKey(missing) = %v, want ErrNotExist", err)
	}
}

// checkKeyFiles checks the files Keygen wrote in dir.
func checkKeyFiles(t *testing.T, dir string, pub PublicKey) {
	t.Helper()
	for name, mode := range map[string]os.FileMode{SecretKeyFile: 0o600, PublicKeyFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	got, err := ParsePublicKey(readFile(t, filepath.Join(dir, PublicKeyFile)))
	if err != nil || !got.Equal(pub) {
		t.Errorf("release.pub holds %s (%v), want %s", got.ID(), err, pub.ID())
	}
	var k minisign.PublicKey
	if err := k.UnmarshalText([]byte(readFile(t, filepath.Join(dir, PublicKeyFile)))); err != nil {
		t.Errorf("minisign cannot read release.pub: %v", err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
