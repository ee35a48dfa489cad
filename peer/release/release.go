package release

import (
	"errors"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/readymesh/readymesh/peer/wire"
)

// Format is the manifest format this build reads and writes.
const Format = "readymesh-release/1"

// File names in a release directory.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.json.minisig"
)

// Bounds of what Parse and LoadDir accept.
const (
	// MaxManifest bounds a manifest's bytes, as wire.PublishArgs does.
	MaxManifest = 32 << 10
	// MaxSignature bounds a signature's text, as wire.PublishArgs does.
	MaxSignature = 4 << 10
	// MaxNotes bounds a manifest's release notes.
	MaxNotes = 4 << 10
	// MaxBinaries bounds the binaries of one release.
	MaxBinaries = 16
)

// Errors callers branch on.
var (
	ErrBadSignature = errors.New("release: signature does not verify")
	ErrWrongKey     = errors.New("release: signed by another key")
	ErrMalformed    = errors.New("release: malformed manifest")
)

// Manifest is what a release's signed manifest.json holds.
type Manifest struct {
	Format   string               `json:"format"`
	Version  string               `json:"version"`
	MinAgent string               `json:"min_agent_version,omitempty"`
	Notes    string               `json:"notes,omitempty"`
	Created  time.Time            `json:"created"`
	Binaries []wire.ReleaseBinary `json:"binaries"`
	// NextKey, when set, is the release public key agents pin once they
	// install this release (a key rotation signed by the old key). It is
	// the key's base64 line, as PublicKey.String gives it.
	NextKey string `json:"next_key,omitempty"`
}

// PublicKey is a release public key (minisign). The zero value is no key.
type PublicKey struct {
	text string
	key  minisign.PublicKey
}

// String returns the key's base64 line.
func (k PublicKey) String() string { return k.text }

// Binary returns the binary for platform (GOOS/GOARCH).
func (m Manifest) Binary(platform string) (wire.ReleaseBinary, bool) {
	for _, b := range m.Binaries {
		if b.Platform == platform {
			return b, true
		}
	}
	return wire.ReleaseBinary{}, false
}

// platforms are the GOOS/GOARCH pairs a release may carry: every
// platform sessiond is built for.
var platforms = []string{
	"darwin/amd64", "darwin/arm64",
	"linux/amd64", "linux/arm64",
	"windows/amd64", "windows/arm64",
}

// Platforms returns the platforms a release may carry, sorted.
func Platforms() []string { return append([]string(nil), platforms...) }

// knownPlatform reports whether p is one of Platforms.
func knownPlatform(p string) bool {
	for _, q := range platforms {
		if p == q {
			return true
		}
	}
	return false
}

// BinaryName is the file name of platform's sessiond in a release
// directory: sessiond-GOOS-GOARCH, with .exe on Windows.
func BinaryName(platform string) string {
	goos, goarch, _ := strings.Cut(platform, "/")
	name := "sessiond-" + goos + "-" + goarch
	if goos == "windows" {
		name += ".exe"
	}
	return name
}

// platformOf returns the platform whose BinaryName is name.
func platformOf(name string) (string, bool) {
	for _, p := range platforms {
		if BinaryName(p) == name {
			return p, true
		}
	}
	return "", false
}
