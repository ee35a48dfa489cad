package releases

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// Audit events of releases.
const (
	AuditPublished = "release.published"
	AuditWithdrawn = "release.withdrawn"
	AuditKeySet    = "release.key_set"
	// AuditBlobUploaded is a technician's upload of a release binary
	// that left the blob whole on this broker.
	AuditBlobUploaded = "release.blob_uploaded"
)

// errNoKey is a publication before the fleet trusts a key.
var errNoKey = wire.Errorf(wire.CodeConflict,
	"no release key is trusted yet: run meshctl releases trust release.pub first")

// Publish runs OpReleasesPublish for admin t: it verifies the manifest's
// signature with the fleet's key, checks that this broker holds every
// binary whole, and stores the release (and the next key it names).
func (r *Room) Publish(t *wire.Technician, a *wire.PublishArgs) (wire.Release, *wire.Error) {
	key, ok := r.deps.Records.ReleaseKey()
	if !ok {
		return wire.Release{}, errNoKey
	}
	pk, err := release.ParsePublicKey(key.PublicKey)
	if err != nil {
		return wire.Release{}, wire.Errorf(wire.CodeInternal, "the fleet's release key: %v", err)
	}
	m, werr := verify(pk, a)
	if werr != nil {
		return wire.Release{}, werr
	}
	now := r.cfg.Now().UTC()
	next, werr := nextKey(pk, m, t.Name, now)
	if werr != nil {
		return wire.Release{}, werr
	}
	rec := store.ReleaseRecord{Version: m.Version, Manifest: a.Manifest, Signature: a.Signature, KeyID: pk.ID(),
		PublishedBy: t.Name, PublishedAt: now}
	keys, err := r.deps.Records.PublishRelease(rec, m.Binaries, next)
	if err != nil {
		return wire.Release{}, recordError(err)
	}
	r.deps.Replication.Written(keys...)
	r.catalog.invalidate()
	r.deps.Audit.Add(wire.AuditEntry{Event: AuditPublished, Technician: t.Name,
		Detail: fmt.Sprintf("release %s with %d binaries, signed by key ID %s", m.Version, len(m.Binaries), pk.ID())})
	if next != nil {
		r.deps.Audit.Add(wire.AuditEntry{Event: AuditKeySet, Technician: t.Name,
			Detail: fmt.Sprintf("fleet release key ID %s replaces %s, named by release %s", next.KeyID, pk.ID(), m.Version)})
		r.log.Info("fleet release key rotated", "key_id", next.KeyID, "was", pk.ID(), "release", m.Version)
	}
	r.log.Info("release published", "version", m.Version, "by", t.Name)
	if stored, ok, err := r.deps.Records.Release(m.Version); err == nil && ok {
		rec = stored
	}
	return view(rec, m), nil
}

// verify checks a publication's signature with the fleet's key pk.
func verify(pk release.PublicKey, a *wire.PublishArgs) (release.Manifest, *wire.Error) {
	m, err := release.Verify(pk, a.Manifest, a.Signature)
	switch {
	case err == nil:
		return m, nil
	case errors.Is(err, release.ErrWrongKey):
		signer, _ := release.SignatureKeyID(a.Signature)
		return m, wire.Errorf(wire.CodeForbidden, "the release is signed by key ID %s, but the fleet trusts key ID %s: sign it with the fleet's key",
			signer, pk.ID())
	case errors.Is(err, release.ErrBadSignature):
		return m, wire.Errorf(wire.CodeForbidden, "%v", err)
	}
	return m, wire.Errorf(wire.CodeBadRequest, "%v", err)
}

// nextKey is the fleet key record a manifest's next key makes, or nil.
func nextKey(signer release.PublicKey, m release.Manifest, by string, now time.Time) (*store.ReleaseKeyRecord, *wire.Error) {
	if m.NextKey == "" {
		return nil, nil
	}
	nk, err := release.ParsePublicKey(m.NextKey)
	switch {
	case err != nil:
		return nil, wire.Errorf(wire.CodeBadRequest, "the manifest's next_key: %v", err)
	case nk.ID() == signer.ID():
		return nil, wire.Errorf(wire.CodeBadRequest, "the manifest's next_key is the key that signed it")
	}
	return &store.ReleaseKeyRecord{PublicKey: nk.String(), KeyID: nk.ID(), SetBy: by, SetAt: now,
		Via: "release " + m.Version}, nil
}

// recordError is the refusal of a failed release write.
func recordError(err error) *wire.Error {
	switch {
	case errors.Is(err, store.ErrNoReleaseKey):
		return errNoKey
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrReleaseKey),
		errors.Is(err, store.ErrBlobMissing), errors.Is(err, store.ErrWithdrawn):
		return wire.Errorf(wire.CodeConflict, "%v", err)
	case errors.Is(err, store.ErrNotFound):
		return wire.Errorf(wire.CodeNotFound, "%v", err)
	case errors.Is(err, store.ErrMalformed):
		return wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	return wire.Errorf(wire.CodeInternal, "%v", err)
}

// List runs OpReleasesList: every release, newest version first, without
// manifests and signatures.
func (r *Room) List() ([]wire.Release, *wire.Error) {
	recs, err := r.deps.Records.Releases()
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	out := make([]wire.Release, 0, len(recs))
	for _, rec := range recs {
		m, _ := release.Parse(rec.Manifest)
		v := view(rec, m)
		v.Manifest, v.Signature = nil, ""
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b wire.Release) int { return release.CompareVersions(b.Version, a.Version) })
	return out, nil
}

// Show runs OpReleasesShow: one release with its manifest, signature and
// how much of each binary this broker holds.
func (r *Room) Show(a *wire.VersionArgs) (wire.Release, *wire.Error) {
	rec, werr := r.release(a.Version)
	if werr != nil {
		return wire.Release{}, werr
	}
	m, _ := release.Parse(rec.Manifest)
	v := view(rec, m)
	for i, b := range v.Binaries {
		if bm, ok := r.deps.Blobs.BlobHave(b.SHA256); ok && bm.Size == b.Size {
			v.Binaries[i].Have = bm.Have
		}
	}
	return v, nil
}

// Withdraw runs OpReleasesWithdraw for admin t: agents are never offered
// the release again.
func (r *Room) Withdraw(t *wire.Technician, a *wire.VersionArgs) (wire.Release, *wire.Error) {
	rec, err := r.deps.Records.WithdrawRelease(a.Version, t.Name, r.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return wire.Release{}, wire.Errorf(wire.CodeNotFound, "no release %s is published", a.Version)
	case err != nil:
		return wire.Release{}, recordError(err)
	}
	r.deps.Replication.Written(store.Key{Kind: store.KindRelease, ID: a.Version})
	r.catalog.invalidate()
	r.deps.Audit.Add(wire.AuditEntry{Event: AuditWithdrawn, Technician: t.Name, Detail: "release " + a.Version})
	r.log.Info("release withdrawn", "version", a.Version, "by", t.Name)
	m, _ := release.Parse(rec.Manifest)
	v := view(rec, m)
	v.Manifest, v.Signature = nil, ""
	return v, nil
}

// Key runs OpReleaseKey: the fleet's release key, empty when none is
// trusted yet.
func (r *Room) Key() wire.ReleaseKey {
	k, ok := r.deps.Records.ReleaseKey()
	if !ok {
		return wire.ReleaseKey{}
	}
	return wire.ReleaseKey{PublicKey: k.PublicKey, KeyID: k.KeyID, SetBy: k.SetBy, SetAt: k.SetAt, Via: k.Via}
}

// Trust runs OpReleaseKeyTrust for admin t: the fleet's first release
// key. A fleet that has one changes it only by a release it signed.
func (r *Room) Trust(t *wire.Technician, a *wire.ReleaseKeyArgs) (wire.ReleaseKey, *wire.Error) {
	if k, ok := r.deps.Records.ReleaseKey(); ok {
		return wire.ReleaseKey{}, alreadyTrusted(k.KeyID)
	}
	pk, err := release.ParsePublicKey(a.PublicKey)
	if err != nil {
		return wire.ReleaseKey{}, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	rec := store.ReleaseKeyRecord{PublicKey: pk.String(), KeyID: pk.ID(), SetBy: t.Name, SetAt: r.cfg.Now(), Via: store.ViaTrust}
	if err := r.deps.Records.SetReleaseKey(rec); err != nil {
		if errors.Is(err, store.ErrExists) {
			k, _ := r.deps.Records.ReleaseKey()
			return wire.ReleaseKey{}, alreadyTrusted(k.KeyID)
		}
		return wire.ReleaseKey{}, recordError(err)
	}
	r.deps.Replication.Written(store.Key{Kind: store.KindReleaseKey, ID: store.FleetKeyName})
	r.deps.Audit.Add(wire.AuditEntry{Event: AuditKeySet, Technician: t.Name,
		Detail: "fleet release key ID " + pk.ID() + " trusted"})
	r.log.Info("fleet release key trusted", "key_id", pk.ID(), "by", t.Name)
	return r.Key(), nil
}

func alreadyTrusted(id string) *wire.Error {
	return wire.Errorf(wire.CodeConflict, "the fleet already trusts key ID %s; rotate by publishing a release with --next-key", id)
}

// release reads a release, withdrawn or not.
func (r *Room) release(version string) (store.ReleaseRecord, *wire.Error) {
	rec, ok, err := r.deps.Records.Release(version)
	switch {
	case err != nil:
		return rec, wire.Errorf(wire.CodeInternal, "reading release %s: %v", version, err)
	case !ok:
		return rec, wire.Errorf(wire.CodeNotFound, "no release %s is published", version)
	}
	return rec, nil
}

// view is a stored release as technicians see it.
func view(rec store.ReleaseRecord, m release.Manifest) wire.Release {
	return wire.Release{Version: rec.Version, MinAgent: m.MinAgent, Notes: m.Notes, Binaries: slices.Clone(m.Binaries),
		KeyID: rec.KeyID, NextKey: m.NextKey, PublishedBy: rec.PublishedBy, PublishedAt: rec.PublishedAt,
		Withdrawn: rec.Withdrawn, WithdrawnBy: rec.WithdrawnBy, Manifest: rec.Manifest, Signature: rec.Signature}
}

// Published returns release version for an update order: its record,
// whose Manifest and Signature are the bytes as signed, and the parsed
// manifest. An unknown release is CodeNotFound, a withdrawn one
// CodeGone.
func (r *Room) Published(version string) (store.ReleaseRecord, release.Manifest, *wire.Error) {
	rec, werr := r.release(version)
	if werr != nil {
		return rec, release.Manifest{}, werr
	}
	if rec.Withdrawn {
		return rec, release.Manifest{}, wire.Errorf(wire.CodeGone, "release %s was withdrawn by %s at %s", version, rec.WithdrawnBy,
			rec.WithdrawnAt.Format(time.RFC3339))
	}
	m, err := release.Parse(rec.Manifest)
	if err != nil {
		return rec, m, wire.Errorf(wire.CodeInternal, "release %s: %v", version, err)
	}
	return rec, m, nil
}

// Order returns the update order that installs release version: what a
// job's JobRequest.Update carries. healthWindow is how long the new agent
// has to check in before the agent puts the previous binary back.
func (r *Room) Order(version, rollout string, rollback bool, healthWindow time.Duration) (wire.UpdateOrder, *wire.Error) {
	rec, _, werr := r.Published(version)
	if werr != nil {
		return wire.UpdateOrder{}, werr
	}
	o := wire.UpdateOrder{Version: rec.Version, Manifest: rec.Manifest, Signature: rec.Signature, Rollout: rollout,
		Rollback: rollback, HealthWindowSec: int(healthWindow / time.Second)}
	if err := o.Validate(); err != nil {
		return o, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	return o, nil
}
