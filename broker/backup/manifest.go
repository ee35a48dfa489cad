package backup

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/buildinfo"
)

// The format's name and version. A reader refuses other formats and newer
// versions.
const (
	FormatName    = "readymesh-broker-backup"
	FormatVersion = 1
)

// Part names: each is the part's file name in the data directory (the
// broker package's StoreFile and KeyFile).
const (
	ManifestName = "manifest.json"
	StorePart    = "broker.db"
	KeyPart      = "broker.key"
)

// ErrNewerFormat is returned for a backup written by a newer build in a
// format version this build does not read.
var ErrNewerFormat = errors.New("backup format is newer than this build reads")

// Bounds on what a reader accepts before checking it.
const (
	maxManifest = 64 << 10
	maxKey      = 4 << 10
)

// Manifest describes a backup.
type Manifest struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	// Broker is the broker backed up.
	Broker Broker `json:"broker"`
	// Build is the build that wrote the backup.
	Build buildinfo.Info `json:"build"`
	// Store describes the snapshot.
	Store store.BackupInfo `json:"store"`
	// Parts are the parts after the manifest, in order.
	Parts []Part `json:"parts"`
}

// Broker names the broker a backup was taken from.
type Broker struct {
	// Name is its --name; empty when it was not known (a stopped broker
	// that never wrote broker.json).
	Name string `json:"name,omitempty"`
	// PeerID is its identity.
	PeerID string `json:"peer_id"`
}

// Part is one file of a backup.
type Part struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
}

// HasKey reports whether the backup carries the broker's key.
func (m *Manifest) HasKey() bool { return m.part(KeyPart) != nil }

func (m *Manifest) part(name string) *Part {
	for i := range m.Parts {
		if m.Parts[i].Name == name {
			return &m.Parts[i]
		}
	}
	return nil
}

// decodeManifest parses and checks a manifest.
func decodeManifest(raw []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	if err := m.check(); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	return m, nil
}

// check refuses a manifest this build cannot restore from.
func (m *Manifest) check() error {
	switch {
	case m.Format != FormatName:
		return fmt.Errorf("format %q, not a %s", m.Format, FormatName)
	case m.Version > FormatVersion:
		return fmt.Errorf("%w: version %d, written by build %s; this build reads version %d: restore with that build or a newer one", ErrNewerFormat, m.Version, m.Build.Version, FormatVersion)
	case m.Version < 1:
		return fmt.Errorf("format version %d", m.Version)
	case m.Broker.PeerID == "":
		return errors.New("no broker peer ID")
	}
	seen := map[string]bool{}
	for _, p := range m.Parts {
		if p.Name != StorePart && p.Name != KeyPart {
			return fmt.Errorf("unknown part %q", p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("part %q listed twice", p.Name)
		}
		seen[p.Name] = true
		if sum, err := hex.DecodeString(p.SHA256); err != nil || len(sum) != 32 {
			return fmt.Errorf("part %q: sha256 %q is not 64 hex digits", p.Name, p.SHA256)
		}
		if p.Size < 0 || (p.Name == KeyPart && p.Size > maxKey) {
			return fmt.Errorf("part %q: size %d", p.Name, p.Size)
		}
	}
	if !seen[StorePart] {
		return fmt.Errorf("no %s part", StorePart)
	}
	return nil
}
