package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/release"
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

// check validates a release record as it arrives from another broker
// (Record.Validate): its fields, and that it is what it claims to be. A
// broker's own writes go through checkFields only: the room verified the
// signature before it published, and a tampered store is the agents'
// pinned key's to refuse. Replicated records are held to more because a
// broker that accepted anything would pass one broker's forgery to every
// other: the manifest must parse and name the record's version, the
// record's key ID must be the signature's, and a release is never
// deleted (a tombstone would erase a withdrawal, or a version's bytes
// that must stay one set forever). The signature itself is verified as
// the record is imported (admitRelease), against the fleet's keys as
// stored then.
func (r *ReleaseRecord) check(id string) error {
	if r.Deleted {
		return errors.New("a release is never deleted: tombstone refused")
	}
	if err := r.checkFields(id); err != nil {
		return err
	}
	m, err := release.Parse(r.Manifest)
	if err != nil {
		return fmt.Errorf("manifest: %v", err)
	}
	if m.Version != id {
		return fmt.Errorf("manifest of version %q stored as release %q", m.Version, id)
	}
	signer, err := release.SignatureKeyID(r.Signature)
	switch {
	case err != nil:
		return fmt.Errorf("signature: %v", err)
	case signer != r.KeyID:
		return fmt.Errorf("signed by key ID %s, the record says %s", signer, r.KeyID)
	}
	return nil
}

// checkFields checks the fields of a release record, for every write.
func (r *ReleaseRecord) checkFields(id string) error {
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

// mergeRelease: the later clock wins, but a withdrawal is sticky: when
// the loser is withdrawn and the winner is not (a copy written later
// that never saw the withdrawal, or a forged one), the winner keeps the
// loser's withdrawal. A withdrawn release must never be offered again.
// The result is the same whichever side merges, so brokers converge.
func mergeRelease(l, r *ReleaseRecord) *ReleaseRecord {
	w, o, _, _ := winner(l, r, l.Stamp, r.Stamp)
	if w.Withdrawn || !o.Withdrawn {
		return w
	}
	c := *w
	c.Withdrawn, c.WithdrawnBy, c.WithdrawnAt = true, o.WithdrawnBy, o.WithdrawnAt
	return &c
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
	// Retired are the keys the fleet's key replaced, oldest first (at
	// most maxKeyChain): the releases they signed stay history, and a
	// broker verifies a replicated release against the key that signed
	// it (admitRelease). Each broker keeps its own list, computed as the
	// key moves (retire); a peer's list is taken only with the first key
	// a broker learns (admitReleaseKey). Copies of one key may so differ
	// in their lists; the merge leaves each broker's own.
	Retired []RetiredKey `json:"retired,omitempty"`
	Stamp
}

// check validates the fleet key as it arrives from another broker
// (Record.Validate): its fields, no tombstone (the fleet never loses
// its key), a key ID that is the public key's, and retired keys that
// parse, each once, in the form this package writes, none of them the
// key itself. Whether the key may replace the stored one depends on
// what is stored: admitReleaseKey.
func (r *ReleaseKeyRecord) check() error {
	if r.Deleted {
		return errors.New("the fleet key is never deleted: tombstone refused")
	}
	if err := r.checkFields(); err != nil {
		return err
	}
	k, err := release.ParsePublicKey(r.PublicKey)
	if err != nil {
		return err
	}
	if k.ID() != r.KeyID {
		return fmt.Errorf("key ID %s, the public key's is %s", r.KeyID, k.ID())
	}
	for i, rk := range r.Retired {
		old, err := release.ParsePublicKey(rk.Key)
		switch {
		case err != nil:
			return fmt.Errorf("retired key %d: %v", i, err)
		case old.String() != rk.Key:
			return fmt.Errorf("retired key %d is not a public key's base64 line", i)
		case old.Equal(k):
			return fmt.Errorf("retired key %d is the fleet's key %s", i, k.ID())
		case slices.ContainsFunc(r.Retired[:i], func(o RetiredKey) bool { return o.Key == rk.Key }):
			return fmt.Errorf("retired key %d (%s) is listed twice", i, old.ID())
		}
		if err := wire.ValidVersion(rk.Until); err != nil {
			return fmt.Errorf("retired key %d: until: %v", i, err)
		}
	}
	return nil
}

// RetiredKey is a release key the fleet moved away from, and the last
// version it signed as the fleet's key: the release that named its
// successor. A broker takes no later version signed by it (a key is
// often retired because it leaked).
type RetiredKey struct {
	Key   string `json:"key"`   // the public key's base64 line
	Until string `json:"until"` // the version of the release that retired it
}

// checkFields checks the fields of the fleet key, for every write.
func (r *ReleaseKeyRecord) checkFields() error {
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
	case len(r.Retired) > maxKeyChain:
		return fmt.Errorf("%d retired keys, limit %d", len(r.Retired), maxKeyChain)
	}
	for i, rk := range r.Retired {
		if rk.Key == "" || len(rk.Key) > 256 || len(rk.Until) > 64 {
			return fmt.Errorf("retired key %d of %d bytes, until %d bytes", i, len(rk.Key), len(rk.Until))
		}
	}
	if err := wire.ValidName("set by", r.SetBy); err != nil {
		return err
	}
	return r.Stamp.check()
}

// mergeReleaseKey: the later clock wins. The retired keys are not
// merged: the broker importing keeps its own (admitReleaseKey), as a
// history cannot be proven backwards (anyone can sign a release naming
// the fleet's key as its next), and a list that merged by union would let
// a peer add a key of its own, one that merged by intersection would let
// a peer (or a broker that knows less) erase the fleet's.
func mergeReleaseKey(l, r *ReleaseKeyRecord) *ReleaseKeyRecord {
	w, _, _, _ := winner(l, r, l.Stamp, r.Stamp)
	return w
}

// ViaTrust is ReleaseKeyRecord.Via of a key an admin set by hand.
const ViaTrust = "trust"

// sameKey reports whether two public keys are the same key, written
// alike or not.
func sameKey(a, b string) bool {
	if a == b {
		return true
	}
	ka, err := release.ParsePublicKey(a)
	if err != nil {
		return false
	}
	kb, err := release.ParsePublicKey(b)
	return err == nil && ka.Equal(kb)
}

// Errors of release writes, wrapped with the detail.
var (
	// ErrNoReleaseKey is a publication before the fleet trusts a key.
	ErrNoReleaseKey = errors.New("no release key is trusted yet")
	// ErrReleaseKey is a release signed by another key than the fleet's.
	ErrReleaseKey = errors.New("signed by another key than the fleet's")
	// ErrBlobMissing is a release binary this broker does not hold whole,
	// at the size its manifest says.
	ErrBlobMissing = errors.New("release binary is not stored whole")
	// ErrWithdrawn is a release that was withdrawn.
	ErrWithdrawn = errors.New("release was withdrawn")
)

// PublishRelease stores a new release: rec's manifest and signature, by
// the key rec.KeyID names, which must be the fleet's key now. Every one
// of binaries (the manifest's) must be stored whole at its size. If next
// is not nil (the manifest names a next key, and the caller checked the
// signature), it replaces the fleet's key in the same transaction, and
// the key it replaces joins the retired keys (next's own Retired is
// ignored). It returns the keys written, for replication. A version
// published before, withdrawn or not, is refused: a version names one
// set of bytes forever.
func (s *Store) PublishRelease(rec ReleaseRecord, binaries []wire.ReleaseBinary, next *ReleaseKeyRecord) ([]Key, error) {
	rec.PublishedAt = rec.PublishedAt.UTC()
	rec.Withdrawn, rec.WithdrawnBy, rec.WithdrawnAt = false, "", time.Time{}
	var keys []Key
	err := s.write(func(b *batch) error {
		keys = nil
		old, err := b.publishable(&rec, binaries)
		if err != nil {
			return err
		}
		rec.Stamp = b.stamp()
		if err := rec.checkFields(rec.Version); err != nil {
			return refuse(fmt.Errorf("%w: release: %v", ErrMalformed, err))
		}
		var nk *ReleaseKeyRecord
		if next != nil { // checked before anything is written
			from, err := release.ParsePublicKey(old.PublicKey)
			if err != nil {
				return fmt.Errorf("stored release key: %w", err)
			}
			if err := b.newestOf(old.KeyID, rec.Version); err != nil {
				return err
			}
			for _, rk := range old.Retired {
				if release.CompareVersions(rec.Version, rk.Until) <= 0 {
					return refuse(fmt.Errorf("%w: release %s moves the fleet key, but the key it moves away from became the fleet's at %s: "+
						"each rotation must be newer than the one before", ErrMalformed, rec.Version, rk.Until))
				}
				if sameKey(rk.Key, next.PublicKey) {
					// Brokers that follow the rotations late could not tell a
					// return to it from an old rotation replayed.
					return refuse(fmt.Errorf("%w: release %s names key ID %s as the next key, which the fleet retired at %s: a retired key never returns",
						ErrMalformed, rec.Version, next.KeyID, rk.Until))
				}
			}
			c := *next
			c.Retired = retire(old.Retired, []RetiredKey{{Key: from.String(), Until: rec.Version}}, c.PublicKey)
			if nk, err = b.stampReleaseKey(c); err != nil {
				return err
			}
		}
		k := Key{KindRelease, rec.Version}
		if err := b.putControl(k, &rec); err != nil {
			return err
		}
		if err := b.touchBlobs(binaries, rec.PublishedAt); err != nil {
			return err
		}
		keys = append(keys, k)
		if nk == nil {
			return nil
		}
		keys = append(keys, Key{KindReleaseKey, FleetKeyName})
		return b.putControl(Key{KindReleaseKey, FleetKeyName}, nk)
	})
	if err != nil {
		s.log.Warn("release publication refused", "version", rec.Version, "err", err)
	}
	return keys, err
}

// publishable refuses a publication that would not be whole: a version
// that exists, a key that is not the fleet's, a binary not stored. It
// returns the fleet's key.
func (b *batch) publishable(rec *ReleaseRecord, binaries []wire.ReleaseBinary) (*ReleaseKeyRecord, error) {
	if err := wire.ValidVersion(rec.Version); err != nil {
		return nil, refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	old, found, err := b.release(rec.Version)
	switch {
	case err != nil:
		return nil, err
	case found && old.exists():
		return nil, refuse(fmt.Errorf("release %s was published by %s at %s: %w", rec.Version, old.PublishedBy,
			old.PublishedAt.Format(time.RFC3339), ErrExists))
	}
	key, found, err := b.releaseKey()
	switch {
	case err != nil:
		return nil, err
	case !found || !key.exists():
		return nil, refuse(ErrNoReleaseKey)
	case key.KeyID != rec.KeyID:
		return nil, refuse(fmt.Errorf("release %s is signed by key ID %s, the fleet trusts key ID %s: %w", rec.Version, rec.KeyID, key.KeyID, ErrReleaseKey))
	}
	for _, bin := range binaries {
		if err := b.wholeBlob(bin); err != nil {
			return nil, err
		}
	}
	return key, nil
}

// newestOf refuses a release of version v that moves the fleet key away
// from key id unless v is newer than every stored release id signed:
// brokers take no version after that release from the key (it may have
// leaked), so a rotation in 0.4.7 after 0.5.0 would make every broker
// refuse 0.5.0 for good.
func (b *batch) newestOf(id, v string) error {
	return b.tx.Bucket(bktReleases).ForEach(func(k, raw []byte) error {
		var rec ReleaseRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("release %s: %w", k, err)
		}
		if rec.exists() && rec.KeyID == id && release.CompareVersions(rec.Version, v) >= 0 {
			return refuse(fmt.Errorf("%w: release %s moves the fleet key away from key ID %s, which signed %s already: "+
				"the release that names the next key must be the newest its key signs", ErrMalformed, v, id, rec.Version))
		}
		return nil
	})
}

// wholeBlob refuses a release binary not stored whole at its size.
func (b *batch) wholeBlob(bin wire.ReleaseBinary) error {
	sum, err := blobName(bin.SHA256)
	if err != nil {
		return refuse(err)
	}
	m, found, err := blobMeta(b.tx, sum)
	switch {
	case err != nil:
		return err
	case !found:
		return refuse(fmt.Errorf("binary %s (%s) is not on this broker: upload it first: %w", bin.Platform, bin.SHA256, ErrBlobMissing))
	case m.Size != bin.Size:
		return refuse(fmt.Errorf("binary %s (%s) is %d bytes here, the manifest says %d: %w", bin.Platform, bin.SHA256, m.Size, bin.Size, ErrBlobMissing))
	case !m.Whole():
		return refuse(fmt.Errorf("binary %s (%s): this broker holds %d of its %d bytes: resume the upload: %w", bin.Platform, bin.SHA256, m.Have, m.Size, ErrBlobMissing))
	}
	return nil
}

// touchBlobs marks a release's binaries used at its publication, in the
// publication's transaction: a sweep whose view of the releases predates
// the publication still sees a fresh blob, and keeps it.
func (b *batch) touchBlobs(binaries []wire.ReleaseBinary, at time.Time) error {
	for _, bin := range binaries {
		sum, err := blobName(bin.SHA256)
		if err != nil {
			return refuse(err)
		}
		m, found, err := blobMeta(b.tx, sum)
		if err != nil || !found || !m.LastUsed.Before(at) {
			return err
		}
		m.LastUsed = at
		if err := putJSON(b.tx.Bucket(bktBlobMeta), sum, m); err != nil {
			return err
		}
	}
	return nil
}

// WithdrawRelease marks a release withdrawn: it is never offered to
// agents again. Withdrawing it twice is refused (ErrWithdrawn), naming
// who did it first.
func (s *Store) WithdrawRelease(version, by string, now time.Time) (ReleaseRecord, error) {
	var out ReleaseRecord
	err := s.write(func(b *batch) error {
		rec, found, err := b.release(version)
		switch {
		case err != nil:
			return err
		case !found || !rec.exists():
			return refuse(fmt.Errorf("release %s: %w", version, ErrNotFound))
		case rec.Withdrawn:
			return refuse(fmt.Errorf("release %s by %s at %s: %w", version, rec.WithdrawnBy,
				rec.WithdrawnAt.Format(time.RFC3339), ErrWithdrawn))
		}
		c := *rec
		c.Withdrawn, c.WithdrawnBy, c.WithdrawnAt = true, by, now.UTC()
		c.Clock = b.s.clock.tick()
		if err := c.checkFields(version); err != nil {
			return refuse(fmt.Errorf("%w: release: %v", ErrMalformed, err))
		}
		out = c
		return b.putControl(Key{KindRelease, version}, &c)
	})
	return out, err
}

// Release returns a published release, withdrawn or not, and whether it
// is stored.
func (s *Store) Release(version string) (ReleaseRecord, bool, error) {
	var rec ReleaseRecord
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx.Bucket(bktReleases), []byte(version), &rec)
		return err
	})
	if err != nil || !found || !rec.exists() {
		return ReleaseRecord{}, false, err
	}
	return rec, true, nil
}

// Releases returns every published release, withdrawn or not, oldest
// publication first.
func (s *Store) Releases() ([]ReleaseRecord, error) {
	var out []ReleaseRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktReleases).ForEach(func(k, v []byte) error {
			var rec ReleaseRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("release %s: %w", k, err)
			}
			if rec.exists() {
				out = append(out, rec)
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].PublishedAt.Before(out[j].PublishedAt) })
	return out, err
}

// SetReleaseKey stores the fleet's first release key, with no retired
// keys (rec's are ignored). A fleet that has one is refused (ErrExists):
// the key changes only through a release it signed that names the next
// (PublishRelease). Set by hand, a key has no retired keys: on a broker
// that joins a fleet whose key moved, let replication bring the fleet's
// copy instead (a broker with no key takes a peer's first copy whole,
// its retired keys included), or the releases the retired keys signed
// stay off this broker.
func (s *Store) SetReleaseKey(rec ReleaseKeyRecord) error {
	rec.Retired = nil
	err := s.write(func(b *batch) error {
		switch old, found, err := b.releaseKey(); {
		case err != nil:
			return err
		case found && old.exists():
			return refuse(fmt.Errorf("the fleet already trusts key ID %s (set by %s at %s, via %s): %w", old.KeyID, old.SetBy,
				old.SetAt.Format(time.RFC3339), old.Via, ErrExists))
		}
		nk, err := b.stampReleaseKey(rec)
		if err != nil {
			return err
		}
		return b.putControl(Key{KindReleaseKey, FleetKeyName}, nk)
	})
	if err != nil {
		s.log.Warn("release key refused", "key_id", rec.KeyID, "err", err)
	}
	return err
}

// ReleaseKey returns the fleet's release key, if it has one.
func (s *Store) ReleaseKey() (ReleaseKeyRecord, bool) {
	var rec ReleaseKeyRecord
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx.Bucket(bktMeta), keyReleaseKey, &rec)
		return err
	})
	return rec, err == nil && found && rec.exists()
}

// stampReleaseKey stamps the fleet's release key for a write, and checks
// it.
func (b *batch) stampReleaseKey(rec ReleaseKeyRecord) (*ReleaseKeyRecord, error) {
	rec.SetAt = rec.SetAt.UTC()
	rec.Stamp = b.stamp()
	if err := rec.checkFields(); err != nil {
		return nil, refuse(fmt.Errorf("%w: release key: %v", ErrMalformed, err))
	}
	return &rec, nil
}

// release and releaseKey read one record as of the batch.

func (b *batch) release(version string) (*ReleaseRecord, bool, error) {
	rec, found, err := getControl(b.tx, Key{KindRelease, version})
	return rec.(*ReleaseRecord), found, err
}

func (b *batch) releaseKey() (*ReleaseKeyRecord, bool, error) {
	rec, found, err := getControl(b.tx, Key{KindReleaseKey, FleetKeyName})
	return rec.(*ReleaseKeyRecord), found, err
}
