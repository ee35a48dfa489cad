package wire

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// Agent updates. A release is a manifest signed offline with the MSP's
// release key (minisign; package peer/release reads and checks it) and
// one sessiond binary per platform. Technicians publish releases to a
// broker; brokers keep the manifests as replicated records and the
// binaries as blobs pulled on demand; agents fetch the blob for their
// platform over their bridge when a rollout sends them an update job.

// ProtoRelease carries release blobs, one BlobRequest and one BlobReply
// per stream, then raw bytes: a technician uploading a release
// (BlobPut, then the bytes, then the broker's BlobReply), an agent or
// another broker downloading one (BlobGet: the BlobReply, then the
// bytes from Offset to the end). Manifests travel as technician
// operations (OpReleasesPublish).
const ProtoRelease protocol.ID = "/readymesh/release/1.0.0"

// Blob operations (BlobRequest.Op).
const (
	BlobGet = "get" // download from Offset; resumable
	BlobPut = "put" // upload Size-Offset bytes from Offset (admin only); resumable
	BlobHas = "has" // how many bytes of the blob the broker holds (BlobReply.Have)
)

// MaxBlob bounds one release binary (256 MiB).
const MaxBlob = 256 << 20

// BlobRequest opens a ProtoRelease stream.
type BlobRequest struct {
	Versions
	Op     string `json:"op"`
	SHA256 string `json:"sha256"` // hex: the blob's name
	Size   int64  `json:"size"`   // the blob's whole size, as the manifest says
	Offset int64  `json:"offset,omitempty"`
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate implements the Decode contract.
func (r *BlobRequest) Validate() error {
	switch {
	case r.Op != BlobGet && r.Op != BlobPut && r.Op != BlobHas:
		return fmt.Errorf("blob: unknown op %q", r.Op)
	case !hex64.MatchString(r.SHA256):
		return errors.New("blob: sha256 must be 64 lower-case hex digits")
	case r.Size <= 0 || r.Size > MaxBlob:
		return fmt.Errorf("blob: size must be 1 byte to %d MiB", MaxBlob>>20)
	case r.Offset < 0 || r.Offset > r.Size:
		return errors.New("blob: offset outside the blob")
	}
	return nil
}

// BlobReply answers a BlobRequest. For BlobGet without Error, the
// bytes from the request's Offset to Size follow it on the stream.
type BlobReply struct {
	Error *Error `json:"error,omitempty"`
	Versions
	// Have is how many bytes of the blob the broker holds, from the
	// start: Size once it is whole.
	Have int64 `json:"have"`
}

// ReleaseBinary is one platform's binary of a release, as its manifest
// names it.
type ReleaseBinary struct {
	Platform string `json:"platform"` // GOOS/GOARCH: linux/amd64, windows/arm64, darwin/arm64…
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	// Have is how many bytes of it the answering broker holds (only in
	// releases.show; another broker's blob is pulled when an agent asks).
	Have int64 `json:"have,omitempty"`
}

// Release is a published release as technicians see it.
type Release struct {
	Version string `json:"version"`
	// MinAgent is the oldest agent version the release updates from.
	MinAgent string          `json:"min_agent_version,omitempty"`
	Notes    string          `json:"notes,omitempty"`
	Binaries []ReleaseBinary `json:"binaries"`
	// KeyID is the minisign key ID (16 hex digits) that signed it.
	KeyID string `json:"key_id"`
	// NextKey, when set, is the release key the fleet moves to: agents
	// that install this release pin it instead of the key that signed
	// it.
	NextKey     string    `json:"next_key,omitempty"`
	PublishedBy string    `json:"published_by"`
	PublishedAt time.Time `json:"published_at"`
	Withdrawn   bool      `json:"withdrawn,omitempty"`
	WithdrawnBy string    `json:"withdrawn_by,omitempty"`
	// Manifest and Signature are the signed manifest's bytes and its
	// minisign signature, as published; only in releases.show and in
	// update orders.
	Manifest  []byte `json:"manifest,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// Release operations (ProtoTech).
const (
	OpReleasesPublish  = "releases.publish"  // PublishArgs → Release (admin); the blobs are uploaded first over ProtoRelease
	OpReleasesList     = "releases.list"     // no args → []Release
	OpReleasesShow     = "releases.show"     // VersionArgs → Release with manifest and signature
	OpReleasesWithdraw = "releases.withdraw" // VersionArgs → Release (admin)
	OpReleaseKey       = "releases.key"      // no args → ReleaseKey
	OpReleaseKeyTrust  = "releases.trust"    // ReleaseKeyArgs → ReleaseKey (admin)
)

// PublishArgs publishes a release whose blobs the broker holds.
type PublishArgs struct {
	Manifest  []byte `json:"manifest"`
	Signature string `json:"signature"`
}

// Validate implements the Decode contract.
func (a *PublishArgs) Validate() error {
	if len(a.Manifest) == 0 || len(a.Manifest) > 32<<10 {
		return errors.New("the manifest must be 1 byte to 32 KiB")
	}
	if a.Signature == "" || len(a.Signature) > 4<<10 {
		return errors.New("the signature must be 1 byte to 4 KiB")
	}
	return nil
}

// VersionArgs names a release.
type VersionArgs struct {
	Version string `json:"version"`
}

// Validate implements the Decode contract.
func (a *VersionArgs) Validate() error { return ValidVersion(a.Version) }

// ValidVersion checks a release version: 1 to 64 characters of digits,
// letters, '.', '-' and '+', starting with a digit.
func ValidVersion(v string) error {
	if len(v) == 0 || len(v) > 64 || v[0] < '0' || v[0] > '9' ||
		strings.IndexFunc(v, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' || r == '-' || r == '+')
		}) >= 0 {
		return fmt.Errorf("version %q: want digits, letters, '.', '-' or '+', starting with a digit", v)
	}
	return nil
}

// ReleaseKey is the fleet's release public key, which brokers put into
// enrolment tokens. Brokers hold only the public key.
type ReleaseKey struct {
	// PublicKey is the minisign public key ("RW…"), empty when the fleet
	// has none yet.
	PublicKey string    `json:"public_key"`
	KeyID     string    `json:"key_id,omitempty"`
	SetBy     string    `json:"set_by,omitempty"`
	SetAt     time.Time `json:"set_at,omitzero"`
	// Via is how it was set: "trust" (an admin, when the fleet had no
	// key) or "release VERSION" (a release signed by the previous key
	// that named this one).
	Via string `json:"via,omitempty"`
}

// ReleaseKeyArgs sets the fleet's first release key.
type ReleaseKeyArgs struct {
	PublicKey string `json:"public_key"`
}

// Validate implements the Decode contract.
func (a *ReleaseKeyArgs) Validate() error {
	if a.PublicKey == "" || len(a.PublicKey) > 256 {
		return errors.New("public key: want a minisign public key (RW…)")
	}
	return nil
}

// UpdateOrder is the update a job carries (JobRequest.Update): the
// release to install, as published.
type UpdateOrder struct {
	Version   string `json:"version"`
	Manifest  []byte `json:"manifest"`
	Signature string `json:"signature"`
	// Rollout names the rollout the update belongs to.
	Rollout string `json:"rollout,omitempty"`
	// Rollback allows a release older than the agent's own: set only by
	// a rollout started as an explicit rollback.
	Rollback bool `json:"rollback,omitempty"`
	// HealthWindowSec is how long the new agent has to check in before
	// the agent puts the previous binary back.
	HealthWindowSec int `json:"health_window_s"`
}

// Validate implements the Decode contract.
func (u *UpdateOrder) Validate() error {
	a := PublishArgs{Manifest: u.Manifest, Signature: u.Signature}
	if err := a.Validate(); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if u.HealthWindowSec < 10 || u.HealthWindowSec > 7*24*3600 {
		return errors.New("update: health window must be between 10s and 7 days")
	}
	return ValidVersion(u.Version)
}

// Update outcomes a check-in reports (CheckIn.Update, Reason).
const (
	ReasonUpdated    = "updated"     // the first check-in of a new agent binary
	ReasonRolledBack = "rolled-back" // the previous binary is back: the new one failed
)

// UpdateReport is what the first check-in after an update or a
// rollback says of it.
type UpdateReport struct {
	From    string `json:"from"` // the version before
	To      string `json:"to"`   // the version tried
	Rollout string `json:"rollout,omitempty"`
	// Outcome is ReasonUpdated or ReasonRolledBack.
	Outcome string `json:"outcome"`
	// Detail says why a rollback happened ("exited with status 2 three
	// times at start", "no check-in within 15m0s").
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Validate checks the report's sizes and outcome.
func (r *UpdateReport) Validate() error {
	if r.Outcome != ReasonUpdated && r.Outcome != ReasonRolledBack {
		return fmt.Errorf("update report: unknown outcome %q", r.Outcome)
	}
	if len(r.From) > 64 || len(r.To) > 64 || len(r.Rollout) > 64 || len(r.Detail) > 1024 {
		return errors.New("update report: a field is too long")
	}
	return nil
}
