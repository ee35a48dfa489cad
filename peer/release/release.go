// Package release reads, signs and checks agent releases.
//
// SKELETON: the signatures below are the contract the agent (sessiond/update),
// the broker (broker/releases) and meshctl code against; the bodies are
// being written. Nothing calls this package yet.
package release

import (
	"errors"
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
	// install this release (a key rotation signed by the old key).
	NextKey string `json:"next_key,omitempty"`
}

// PublicKey is a release public key (minisign).
type PublicKey struct {
	text string
	key  minisign.PublicKey
}

// ParsePublicKey reads a minisign public key: the base64 line ("RW…") or
// a .pub file's text with its comment line.
func ParsePublicKey(s string) (PublicKey, error) { panic("release: not written yet") }

// String returns the key's base64 line.
func (k PublicKey) String() string { return k.text }

// ID returns the key ID as 16 upper-case hex digits, as minisign prints it.
func (k PublicKey) ID() string { panic("release: not written yet") }

// Verify checks signature (minisign text) over manifest with key, then
// parses and checks the manifest. A signature by another key is
// ErrWrongKey, a bad one ErrBadSignature, a bad manifest ErrMalformed.
func Verify(key PublicKey, manifest []byte, signature string) (Manifest, error) {
	panic("release: not written yet")
}

// Parse parses and checks a manifest without verifying it (the broker's
// view before it checks the signature, meshctl's show).
func Parse(manifest []byte) (Manifest, error) { panic("release: not written yet") }

// Binary returns the binary for platform (GOOS/GOARCH).
func (m Manifest) Binary(platform string) (wire.ReleaseBinary, bool) {
	for _, b := range m.Binaries {
		if b.Platform == platform {
			return b, true
		}
	}
	return wire.ReleaseBinary{}, false
}

// CompareVersions returns -1, 0 or +1 as version a is older than, equal
// to or newer than b.
func CompareVersions(a, b string) int { panic("release: not written yet") }

// BinaryName is the file name of platform's sessiond in a release
// directory: sessiond-GOOS-GOARCH, with .exe on Windows.
func BinaryName(platform string) string { panic("release: not written yet") }
