package meshctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/release"
)

// releaseEnv gives meshctl a home of its own and no password in the
// environment; it returns a run function for meshctl's command line.
func releaseEnv(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	t.Setenv("READYMESH_HOME", testdir.New(t))
	t.Setenv(passwordEnv, "")
	return func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(t.Context(), args, &out)
		return out.String(), err
	}
}

// releaseDir writes stand-in binaries for platforms into a new directory.
func releaseDir(t *testing.T, platforms ...string) string {
	t.Helper()
	dir := testdir.New(t)
	for _, p := range platforms {
		if err := os.WriteFile(filepath.Join(dir, release.BinaryName(p)), []byte("sessiond for "+p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReleasesKeygenAndSign(t *testing.T) {
	run := releaseEnv(t)
	keys, next := testdir.New(t), testdir.New(t)
	out, err := run("releases", "keygen", "--out", keys, "--unencrypted", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var made keygenResult
	if err := json.Unmarshal([]byte(out), &made); err != nil {
		t.Fatalf("keygen --json printed %q: %v", out, err)
	}
	pub := readPub(t, filepath.Join(keys, release.PublicKeyFile))
	if made.KeyID != pub.ID() || made.PublicKey != pub.String() || made.Encrypted {
		t.Errorf("keygen --json = %+v, want key %s, unencrypted", made, pub.ID())
	}
	out, err = run("releases", "keygen", "--unencrypted", "--out", next)
	if err != nil {
		t.Fatal(err)
	}
	nextPub := readPub(t, filepath.Join(next, release.PublicKeyFile))
	for _, want := range []string{"release key " + nextPub.ID(), "NOT encrypted", "# warning", "meshctl releases trust " + filepath.Join(next, release.PublicKeyFile)} {
		if !strings.Contains(out, want) {
			t.Errorf("keygen printed:\n%s\nwant %q in it", out, want)
		}
	}

	dir := releaseDir(t, "linux/amd64", "windows/amd64")
	out, err = run("releases", "sign", dir, "--key", filepath.Join(keys, release.SecretKeyFile), "--version", "0.3.0",
		"--min-agent", "0.2.0", "--notes", "faster check-ins", "--next-key", filepath.Join(next, release.PublicKeyFile), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var signed signResult
	if err := json.Unmarshal([]byte(out), &signed); err != nil {
		t.Fatalf("sign --json printed %q: %v", out, err)
	}
	if signed.KeyID != pub.ID() || signed.NextKeyID != nextPub.ID() || signed.ManifestFile != filepath.Join(dir, release.ManifestFile) {
		t.Errorf("sign --json = %+v", signed)
	}
	d, err := release.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := release.Verify(pub, d.ManifestBytes, d.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "0.3.0" || m.MinAgent != "0.2.0" || m.Notes != "faster check-ins" || m.NextKey != nextPub.String() || len(m.Binaries) != 2 {
		t.Errorf("the signed manifest: %+v", m)
	}

	// Signed again, by the next key, with flags after DIR or before it.
	out, err = run("releases", "sign", "--version", "0.3.1", dir, "--key", filepath.Join(next, release.SecretKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"signed release 0.3.1 with key " + nextPub.ID() + ": 2 binaries", "linux/amd64", "windows/amd64",
		m.Binaries[0].SHA256, "# next: meshctl releases publish " + dir} {
		if !strings.Contains(out, want) {
			t.Errorf("sign printed:\n%s\nwant %q in it", out, want)
		}
	}
	if d, err = release.LoadDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := release.Verify(nextPub, d.ManifestBytes, d.Signature); err != nil {
		t.Errorf("the release signed again does not verify with the next key: %v", err)
	}
}

func TestReleasesSignRefuses(t *testing.T) {
	run := releaseEnv(t)
	keys := testdir.New(t)
	if _, err := run("releases", "keygen", "--out", keys, "--unencrypted"); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(keys, release.SecretKeyFile)
	dir := releaseDir(t, "linux/amd64")
	empty := testdir.New(t)
	pwFile := filepath.Join(testdir.New(t), "password")
	if err := os.WriteFile(pwFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args  []string
		usage bool   // a usage error
		want  string // in the error
	}{
		{[]string{"releases", "keygen"}, true, "needs --out DIR"},
		{[]string{"releases", "keygen", "--out", testdir.New(t), "--unencrypted", "--password-file", pwFile}, true, "exclude each other"},
		{[]string{"releases", "keygen", "--out", testdir.New(t)}, false, "a password is needed: give --password-file FILE or set " + passwordEnv},
		{[]string{"releases", "keygen", "--out", testdir.New(t), "--password-file", pwFile}, false, "is empty"},
		{[]string{"releases", "keygen", "--out", testdir.New(t), "--password-file", filepath.Join(empty, "none")}, false, filepath.Join(empty, "none") + ":"},
		{[]string{"releases", "keygen", "--out", keys, "--unencrypted"}, false, "refusing to overwrite"},
		{[]string{"releases", "sign", dir, "--version", "0.3.0"}, true, "needs --key FILE and --version V"},
		{[]string{"releases", "sign", dir, "--key", key}, true, "needs --key FILE and --version V"},
		{[]string{"releases", "sign", "--key", key, "--version", "0.3.0"}, true, "takes DIR"},
		{[]string{"releases", "sign", dir, "--key", key, "--version", "0.3.0", "--frobnicate"}, true, "frobnicate"},
		{[]string{"releases", "sign", empty, "--key", key, "--version", "0.3.0"}, false, "holds no binaries"},
		{[]string{"releases", "sign", dir, "--key", key, "--version", "latest"}, false, "starting with a digit"},
		{[]string{"releases", "sign", dir, "--key", key, "--version", "0.3.0", "--min-agent", "0.4"}, false, "newer than the release"},
		{[]string{"releases", "sign", dir, "--key", key, "--version", "0.3.0", "--next-key", key}, false, "public key"},
		{[]string{"releases", "sign", dir, "--key", key, "--version", "0.3.0", "--next-key", filepath.Join(keys, release.PublicKeyFile)}, false, "is the signing key"},
		{[]string{"releases", "sign", dir, "--key", filepath.Join(keys, release.PublicKeyFile), "--version", "0.3.0"}, false, "not a minisign secret key"},
	}
	for _, tt := range tests {
		_, err := run(tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, ErrUsage) != tt.usage {
			t.Errorf("meshctl %s = %v; want %q (usage error: %v)", strings.Join(tt.args, " "), err, tt.want, tt.usage)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, release.ManifestFile)); err == nil {
		t.Error("a refused sign wrote a manifest")
	}
}

// TestReleasesEncryptedKey makes an encrypted key with a password file
// and signs with the password from the environment: minisign's scrypt at
// its real cost, twice.
func TestReleasesEncryptedKey(t *testing.T) {
	run := releaseEnv(t)
	keys := testdir.New(t)
	pwFile := filepath.Join(testdir.New(t), "password")
	if err := os.WriteFile(pwFile, []byte("correct horse\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run("releases", "keygen", "--out", keys, "--password-file", pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "encrypted with the password") || strings.Contains(out, "warning") {
		t.Errorf("keygen printed:\n%s", out)
	}
	key := filepath.Join(keys, release.SecretKeyFile)
	dir := releaseDir(t, "darwin/arm64")
	// No password anywhere: refused before any work.
	if _, err := run("releases", "sign", dir, "--key", key, "--version", "0.3.0"); !errors.Is(err, release.ErrNoPassword) ||
		!strings.Contains(err.Error(), passwordEnv) {
		t.Fatalf("sign without a password = %v, want a refusal naming %s", err, passwordEnv)
	}
	t.Setenv(passwordEnv, "correct horse")
	if _, err := run("releases", "sign", dir, "--key", key, "--version", "0.3.0"); err != nil {
		t.Fatal(err)
	}
	d, err := release.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := release.Verify(readPub(t, filepath.Join(keys, release.PublicKeyFile)), d.ManifestBytes, d.Signature); err != nil {
		t.Error(err)
	}
}

func readPub(t *testing.T, path string) release.PublicKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := release.ParsePublicKey(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
