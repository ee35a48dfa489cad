package meshctl

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"github.com/readymesh/readymesh/broker/brokertest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// runTestBroker runs a real broker on loopback until the test ends and
// returns the path of its admin credential.
func runTestBroker(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the broker is a Linux daemon; under Wine its UDP sockets fail (WSAIoctl 10045), so the tests that run one run on Linux")
	}
	return brokertest.Run(t, testdir.New(t))
}

// signedDir writes random binaries of the given sizes into a new
// directory and signs it as version with the key in keyDir.
func signedDir(t *testing.T, keyDir, version string, sizes map[string]int) string {
	t.Helper()
	dir := testdir.New(t)
	for p, n := range sizes {
		data := make([]byte, n)
		rand.Read(data)
		if err := os.WriteFile(filepath.Join(dir, release.BinaryName(p)), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	key, err := release.ReadSecretKey(filepath.Join(keyDir, release.SecretKeyFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := release.Sign(dir, key, release.SignOptions{Version: version}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func keyPair(t *testing.T) (dir string, pub release.PublicKey) {
	t.Helper()
	dir = testdir.New(t)
	pub, err := release.KeygenUnencrypted(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, pub
}

// TestReleasesAgainstBroker: trust, key, publish (with its uploads), ls,
// show and withdraw against a real broker, and the errors an admin meets
// on the way, each before any byte is uploaded.
func TestReleasesAgainstBroker(t *testing.T) {
	cred := runTestBroker(t)
	t.Setenv("READYMESH_HOME", testdir.New(t))
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(t.Context(), args, &out)
		return out.String(), err
	}
	wantErr := func(what, want string, args ...string) {
		t.Helper()
		if out, err := run(args...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v (printed %q), want an error saying %q", what, err, out, want)
		}
	}
	if _, err := run("login", "--credential", cred); err != nil {
		t.Fatal(err)
	}
	keys, pub := keyPair(t)
	otherKeys, otherPub := keyPair(t)
	dir := signedDir(t, keys, "0.3.0", map[string]int{"linux/amd64": 1<<20 + 4321, "windows/amd64": 777})

	if out, err := run("releases", "key"); err != nil || !strings.Contains(out, "no release key is trusted yet") {
		t.Errorf("releases key before trust: %q, %v", out, err)
	}
	wantErr("publish before trust", "run meshctl releases trust release.pub first", "releases", "publish", dir)
	pubFile := filepath.Join(keys, release.PublicKeyFile)
	if out, err := run("releases", "trust", pubFile); err != nil || !strings.Contains(out, pub.ID()) {
		t.Fatalf("releases trust: %q, %v", out, err)
	}
	wantErr("a second trust", "already trusts key ID "+pub.ID(), "releases", "trust", filepath.Join(otherKeys, release.PublicKeyFile))
	var k wire.ReleaseKey
	if out, err := run("releases", "key", "--json"); err != nil || json.Unmarshal([]byte(out), &k) != nil || k.KeyID != pub.ID() {
		t.Errorf("releases key --json: %q, %v", out, err)
	}

	out, err := run("releases", "publish", dir, "--json")
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	var p published
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("publish --json printed %q: %v", out, err)
	}
	if p.Release.Version != "0.3.0" || len(p.Uploads) != 2 {
		t.Fatalf("published %+v", p)
	}
	for _, u := range p.Uploads {
		if u.Sent != u.Size {
			t.Errorf("%s: sent %d of %d bytes to a broker that held none", u.Platform, u.Sent, u.Size)
		}
	}
	wantErr("the same version again", "release 0.3.0 was published by admin", "releases", "publish", dir)
	other := signedDir(t, otherKeys, "0.4.0", map[string]int{"linux/amd64": 10})
	wantErr("another key's release", "signed by key ID "+otherPub.ID()+", but the fleet trusts key ID "+pub.ID(),
		"releases", "publish", other)

	// A second release whose linux binary the broker holds already: its
	// upload sends nothing.
	next := signedDir(t, keys, "0.3.1", map[string]int{"darwin/arm64": 300})
	if out, err := run("releases", "publish", next); err != nil || !strings.Contains(out, "published release 0.3.1") {
		t.Fatalf("publish 0.3.1: %q, %v", out, err)
	}
	if out, err := run("releases", "publish", next); err == nil {
		t.Errorf("publishing 0.3.1 twice printed %q", out)
	}

	out, err = run("releases", "ls")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "0.3.1") || !strings.HasPrefix(lines[2], "0.3.0") ||
		!strings.Contains(lines[2], "linux/amd64,windows/amd64") {
		t.Errorf("releases ls, newest first:\n%s", out)
	}
	var shown wire.Release
	out, err = run("releases", "show", "0.3.0", "--json")
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil {
		t.Fatalf("releases show --json: %q, %v", out, err)
	}
	signed, _ := os.ReadFile(filepath.Join(dir, release.ManifestFile))
	if !bytes.Equal(shown.Manifest, signed) || shown.Binaries[0].Have != shown.Binaries[0].Size {
		t.Errorf("releases show: manifest as signed %v, binaries %+v", bytes.Equal(shown.Manifest, signed), shown.Binaries)
	}
	if out, err := run("releases", "show", "0.3.0"); err != nil || !strings.Contains(out, "signed by   key ID "+pub.ID()) {
		t.Errorf("releases show: %q, %v", out, err)
	}

	if out, err := run("releases", "withdraw", "0.3.0"); err != nil || !strings.Contains(out, "withdrew release 0.3.0") {
		t.Fatalf("withdraw: %q, %v", out, err)
	}
	wantErr("withdrawing twice", "was withdrawn", "releases", "withdraw", "0.3.0")
	wantErr("withdrawing an unknown release", "no release 9.9.9", "releases", "withdraw", "9.9.9")
	if out, _ := run("releases", "ls"); !strings.Contains(out, "withdrawn") {
		t.Errorf("releases ls after the withdrawal:\n%s", out)
	}
	wantErr("show without a version", "usage", "releases", "show")
}
