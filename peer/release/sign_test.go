package release

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
)

// writeBinaries writes a stand-in binary (not a Go program) for each
// platform into dir, each with bytes of its own.
func writeBinaries(t testing.TB, dir string, platforms ...string) {
	t.Helper()
	for _, p := range platforms {
		write(t, filepath.Join(dir, BinaryName(p)), strings.Repeat("sessiond for "+p+"\n", 100))
	}
}

// TestSignRoundTrip makes a key, signs a release with it, loads the
// release as publish does and verifies it as an agent does: real files,
// as the commands use them.
func TestSignRoundTrip(t *testing.T) {
	keys, dir := t.TempDir(), t.TempDir()
	pub, err := KeygenUnencrypted(keys)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ReadSecretKey(filepath.Join(keys, SecretKeyFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	next := otherKey(t).Public()
	writeBinaries(t, dir, "windows/amd64", "linux/arm64", "linux/amd64")
	write(t, filepath.Join(dir, "README.txt"), "other files are left alone")
	now := time.Date(2026, 1, 5, 10, 0, 0, 123, time.FixedZone("CET", 3600))
	m, err := Sign(dir, key, SignOptions{Version: "0.3.0", MinAgent: "0.2.0", Notes: "notes", NextKey: next, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	d, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyID != pub.ID() {
		t.Errorf("LoadDir: key ID %s, want %s", d.KeyID, pub.ID())
	}
	got, err := Verify(pub, d.ManifestBytes, d.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "0.3.0" || got.MinAgent != "0.2.0" || got.Notes != "notes" || got.NextKey != next.String() ||
		!got.Created.Equal(now.Truncate(time.Second)) || got.Created.Location() != time.UTC {
		t.Errorf("verified manifest %+v", got)
	}
	if len(got.Binaries) != 3 || len(m.Binaries) != 3 || len(d.Binaries) != 3 {
		t.Fatalf("binaries: verified %d, signed %d, loaded %d; want 3", len(got.Binaries), len(m.Binaries), len(d.Binaries))
	}
	// Each binary is named by its own hash and size, in platform order.
	for i, p := range []string{"linux/amd64", "linux/arm64", "windows/amd64"} {
		b := got.Binaries[i]
		data := readFile(t, filepath.Join(dir, BinaryName(p)))
		sum := sha256.Sum256([]byte(data))
		if b.Platform != p || b.SHA256 != hex.EncodeToString(sum[:]) || b.Size != int64(len(data)) {
			t.Errorf("binaries[%d] = %+v, want %s of %d bytes, sha256 %x", i, b, p, len(data), sum)
		}
		if d.Binaries[p] != filepath.Join(dir, BinaryName(p)) {
			t.Errorf("LoadDir: %s at %q", p, d.Binaries[p])
		}
	}
	var s minisign.Signature
	if err := s.UnmarshalText([]byte(d.Signature)); err != nil || s.TrustedComment != "readymesh release 0.3.0" || s.Algorithm != minisign.HashEdDSA {
		t.Errorf("signature: trusted comment %q, algorithm %#x, %v", s.TrustedComment, s.Algorithm, err)
	}
	// Only the two files, no temporary files left.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 6 {
		t.Errorf("the release dir holds %d entries, want 3 binaries, README, manifest and signature", len(entries))
	}
}

// TestSignAgain signs a release dir twice: the second signature replaces
// the first, and the binaries changed in between are in it.
func TestSignAgain(t *testing.T) {
	dir := t.TempDir()
	writeBinaries(t, dir, "linux/amd64")
	if _, err := Sign(dir, testKey(t), SignOptions{Version: "0.3.0"}); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, BinaryName("linux/amd64")), "rebuilt")
	if _, err := Sign(dir, otherKey(t), SignOptions{Version: "0.3.1"}); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Verify(otherKey(t).Public(), d.ManifestBytes, d.Signature); err != nil || m.Version != "0.3.1" || m.Binaries[0].Size != 7 {
		t.Errorf("the release signed again: %+v, %v", m, err)
	}
}

func TestSignRefuses(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // in the release dir; a "/" suffix makes a directory
		opts  SignOptions
		want  string
	}{
		{"no binaries", map[string]string{"README": "x"}, SignOptions{Version: "0.3.0"}, "holds no binaries"},
		{"unknown platform", map[string]string{"sessiond-linux-amd64": "x", "sessiond-linux-386": "x"}, SignOptions{Version: "0.3.0"}, "sessiond-linux-386: not a release binary's name"},
		{"windows without .exe", map[string]string{"sessiond-windows-amd64": "x"}, SignOptions{Version: "0.3.0"}, "not a release binary's name"},
		{"a leftover", map[string]string{"sessiond-linux-amd64": "x", "sessiond-linux-amd64.part": "x"}, SignOptions{Version: "0.3.0"}, "not a release binary's name"},
		{"empty binary", map[string]string{"sessiond-linux-amd64": ""}, SignOptions{Version: "0.3.0"}, "a regular file of 1 byte"},
		{"directory", map[string]string{"sessiond-linux-amd64/": ""}, SignOptions{Version: "0.3.0"}, "a regular file"},
		{"no version", map[string]string{"sessiond-linux-amd64": "x"}, SignOptions{}, `version ""`},
		{"bad version", map[string]string{"sessiond-linux-amd64": "x"}, SignOptions{Version: "0.3.x"}, "cannot be ordered"},
		{"min agent newer", map[string]string{"sessiond-linux-amd64": "x"}, SignOptions{Version: "0.3.0", MinAgent: "1.0"}, "newer than the release"},
		{"control in notes", map[string]string{"sessiond-linux-amd64": "x"}, SignOptions{Version: "0.3.0", Notes: "\x07"}, "control character"},
		{"next key is this key", map[string]string{"sessiond-linux-amd64": "x"}, SignOptions{Version: "0.3.0", NextKey: testKey(t).Public()}, "is the signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, text := range tt.files {
				if strings.HasSuffix(name, "/") {
					if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
						t.Fatal(err)
					}
					continue
				}
				write(t, filepath.Join(dir, name), text)
			}
			_, err := Sign(dir, testKey(t), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sign = %v, want %q", err, tt.want)
			}
			for _, name := range []string{ManifestFile, SignatureFile} {
				if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
					t.Errorf("the refused Sign wrote %s", name)
				}
			}
		})
	}
	if _, err := Sign(filepath.Join(t.TempDir(), "missing"), testKey(t), SignOptions{Version: "0.3.0"}); err == nil {
		t.Error("Sign of a missing dir succeeded")
	}
}

// TestSignChecksTheBuild builds small Go programs as a release build
// does (-ldflags -X) and signs them: a binary built as another version
// or for another platform than its name is refused; one whose build does
// not say is signed.
func TestSignChecksTheBuild(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build test binaries: %v", err)
	}
	src := t.TempDir()
	write(t, filepath.Join(src, "go.mod"), "module example.com/tiny\n\ngo 1.22\n")
	write(t, filepath.Join(src, "main.go"), "package main\n\nfunc main() {}\n")
	x := func(v string) string { return "-X " + versionVar + "=" + v }
	build := func(t *testing.T, out, platform string, flags ...string) {
		goos, goarch, _ := strings.Cut(platform, "/")
		cmd := exec.Command(goTool, append(append([]string{"build", "-o", out}, flags...), ".")...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
	}
	here := runtime.GOOS + "/" + runtime.GOARCH
	if !knownPlatform(here) {
		t.Skipf("this test builds for its own platform, %s, which releases do not carry", here)
	}
	elsewhere := "linux/amd64"
	if here == elsewhere {
		elsewhere = "linux/arm64"
	}
	tests := []struct {
		name     string
		platform string // built for
		named    string // named for
		flags    []string
		want     string // "" signs
	}{
		{"the version", here, here, []string{"-ldflags", x("0.3.0")}, ""},
		{"quoted, with other flags", here, here, []string{"-ldflags=-s -w -X '" + versionVar + "=0.3.0'"}, ""},
		{"all packages", here, here, []string{"-ldflags=all=-X=" + versionVar + "=0.3.0"}, ""},
		{"no -X: cannot tell", here, here, nil, ""},
		{"-trimpath: cannot tell", here, here, []string{"-trimpath", "-ldflags", x("0.2.0")}, ""},
		{"another version", here, here, []string{"-ldflags", x("0.2.0")}, `built as version "0.2.0", not "0.3.0"`},
		{"the last -X wins", here, here, []string{"-ldflags", x("0.3.0") + " " + x("0.3.0-rc1")}, `built as version "0.3.0-rc1"`},
		{"another platform", elsewhere, here, []string{"-ldflags", x("0.3.0")}, "built for " + elsewhere + ", but named for " + here},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			build(t, filepath.Join(dir, BinaryName(tt.named)), tt.platform, tt.flags...)
			_, err := Sign(dir, testKey(t), SignOptions{Version: "0.3.0"})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Sign = %v, want it signed", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Sign = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLinkedVersion(t *testing.T) {
	const main = "example.com/cmd/sessiond"
	x := versionVar + "="
	tests := []struct {
		ldflags string
		want    string
		ok      bool
	}{
		{"", "", false},
		{"-s -w", "", false},
		{"-X " + x + "0.3.0", "0.3.0", true},
		{"-X=" + x + "0.3.0", "0.3.0", true},
		{"--X " + x + "0.3.0", "0.3.0", true},
		{"-s -X '" + x + "0.3.0' -w", "0.3.0", true},
		{`-X "` + x + `0.3.0"`, "0.3.0", true},
		{"-X " + x + "0.3.0 -X " + x + "0.4.0", "0.4.0", true},
		{"-X " + x, "", true}, // set to empty
		{"-X main.version=0.3.0", "", false},
		{"-X other/buildinfo.Version=0.3.0", "", false},
		{"-X", "", false},
		{"all=-X " + x + "0.3.0", "0.3.0", true},
		{main + "=-X " + x + "0.3.0", "0.3.0", true},
		{"./other=-X " + x + "0.3.0", "", false},
		{"-X '" + x + "0.3.0", "", false}, // unterminated quote
	}
	for _, tt := range tests {
		got, ok := linkedVersion(tt.ldflags, main)
		if got != tt.want || ok != tt.ok {
			t.Errorf("linkedVersion(%q) = %q, %v; want %q, %v", tt.ldflags, got, ok, tt.want, tt.ok)
		}
	}
}
