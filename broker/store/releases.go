package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Releases: the signed manifests of agent releases and the fleet's
// release public key, both replicated control records. The binaries a
// manifest names are blobs (blobs.go), which brokers pull from each other
// on demand rather than through anti-entropy.

// FleetKeyName is the ID of the one ReleaseKeyRecord.
const FleetKeyName = "fleet"

// keyReleaseKey is where the ReleaseKeyRecord lives in the meta bucket.
var keyReleaseKey = []byte("release_key")

// ReleaseRecord is a published release: its manifest exactly as signed,
// the signature, and who published (or withdrew) it. Stored under
// KindRelease and the version.
type ReleaseRecord struct {
	Version     string    `json:"version"`
	Manifest    []byte    `json:"manifest"`
	Signature   string    `json:"signature"`
	KeyID       string    `json:"key_id"`
	PublishedBy string    `json:"published_by"`
	PublishedAt time.Time `json:"published_at"`
	Withdrawn   bool      `json:"withdrawn,omitempty"`
	WithdrawnBy string    `json:"withdrawn_by,omitempty"`
	WithdrawnAt time.Time `json:"withdrawn_at,omitzero"`
	Stamp
}

func (r *ReleaseRecord) check(id string) error {
	switch {
	case r.Version != id:
		return fmt.Errorf("version %q under key %q", r.Version, id)
	case r.Deleted:
		return nil
	case len(r.Manifest) == 0 || len(r.Manifest) > 32<<10:
		return fmt.Errorf("manifest of %d bytes, want 1 byte to 32 KiB", len(r.Manifest))
	case r.Signature == "" || len(r.Signature) > 4<<10:
		return fmt.Errorf("signature of %d bytes, want 1 byte to 4 KiB", len(r.Signature))
	case len(r.KeyID) != 16:
		return fmt.Errorf("key id %q, want 16 hex digits", r.KeyID)
	case r.PublishedAt.IsZero():
		return errors.New("publication time is zero")
	case r.Withdrawn && r.WithdrawnBy == "":
		return errors.New("withdrawn by nobody")
	}
	if err := wire.ValidName("published by", r.PublishedBy); err != nil {
		return err
	}
	return r.Stamp.check()
}

// mergeRelease: the later clock wins (a withdrawal is the later write).
func mergeRelease(l, r *ReleaseRecord) *ReleaseRecord {
	w, _, _, _ := winner(l, r, l.Stamp, r.Stamp)
	return w
}

// ReleaseKeyRecord is the fleet's release public key: what brokers put
// into enrolment tokens and check publications against. Stored under
// KindReleaseKey and FleetKeyName.
type ReleaseKeyRecord struct {
	PublicKey string    `json:"public_key"`
	KeyID     string    `json:"key_id"`
	SetBy     string    `json:"set_by"`
	SetAt     time.Time `json:"set_at"`
	Via       string    `json:"via"`
	Stamp
}

func (r *ReleaseKeyRecord) check() error {
	switch {
	case r.Deleted:
		return nil
	case r.PublicKey == "" || len(r.PublicKey) > 256:
		return fmt.Errorf("public key of %d bytes", len(r.PublicKey))
	case len(r.KeyID) != 16:
		return fmt.Errorf("key id %q, want 16 hex digits", r.KeyID)
	case r.SetAt.IsZero():
		return errors.New("set time is zero")
	case len(r.Via) > 128:
		return errors.New("via is too long")
	}
	if err := wire.ValidName("set by", r.SetBy); err != nil {
		return err
	}
	return r.Stamp.check()
}

// mergeReleaseKey: the later clock wins.
func mergeReleaseKey(l, r *ReleaseKeyRecord) *ReleaseKeyRecord {
	w, _, _, _ := winner(l, r, l.Stamp, r.Stamp)
	return w
}
