package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/readymesh/readymesh/peer/release"
)

// Which release keys a broker trusts, and so which replicated releases
// and fleet keys it takes from its peers.
//
// The fleet's key is taken on trust once (an admin set it on some
// broker); after that it moves only along releases signed by the key
// before, each naming the next (admitReleaseKey). A replicated release
// is stored only once its signature verifies with the fleet key that
// made it (admitRelease): the stored key, one it replaced (the key
// record's Retired list), or one a stored release names as its
// successor. Agents would refuse a forged release by the key they pin,
// but a broker that stored one would list it and roll it out, and pass
// it to every other broker.

// maxKeyChain bounds the rotations a broker follows from its key, and
// the retired keys it keeps.
const maxKeyChain = 64

// keyring is the fleet's release keys as of a batch: the stored key, the
// keys it replaced, and (walked when needed) those that descend from it
// through stored releases. A batch reads it once and drops it when it
// writes a release or the fleet key (putControl).
type keyring struct {
	current release.PublicKey            // the zero key: none is stored
	byID    map[string]release.PublicKey // the stored key and the retired ones
	walked  bool
	// next holds the descendants by ID, parent the key whose release
	// named each (by the descendant's base64 line).
	next   map[string]release.PublicKey
	parent map[string]release.PublicKey
}

// keyring returns the batch's keyring, reading it if needed.
func (b *batch) keyring() (*keyring, error) {
	if b.ring != nil {
		return b.ring, nil
	}
	ring := &keyring{byID: map[string]release.PublicKey{}}
	rec, found, err := b.releaseKey()
	if err != nil {
		return nil, err
	}
	if found && rec.exists() {
		k, err := release.ParsePublicKey(rec.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("stored release key: %w", err)
		}
		ring.current = k
		ring.byID[k.ID()] = k
		// The newest first: of two keys with one ID, the later is used.
		for i := len(rec.Retired) - 1; i >= 0; i-- {
			old, err := release.ParsePublicKey(rec.Retired[i])
			if err != nil {
				return nil, fmt.Errorf("stored retired release key %d: %w", i, err)
			}
			if _, dup := ring.byID[old.ID()]; !dup {
				ring.byID[old.ID()] = old
			}
		}
	}
	b.ring = ring
	return ring, nil
}

// walk finds the keys that descend from the stored key, up to
// maxKeyChain rotations away: each named as next_key by a stored release
// that the key before it signed (the signature verified).
func (b *batch) walk(ring *keyring) error {
	if ring.walked {
		return nil
	}
	ring.next, ring.parent = map[string]release.PublicKey{}, map[string]release.PublicKey{}
	if ring.current.IsZero() {
		ring.walked = true
		return nil
	}
	var recs []ReleaseRecord
	err := b.tx.Bucket(bktReleases).ForEach(func(k, v []byte) error {
		var rec ReleaseRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("release %s: %w", k, err)
		}
		if rec.exists() {
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		return err
	}
	seen := map[string]bool{ring.current.String(): true}
	frontier := []release.PublicKey{ring.current}
	for i := 0; i < maxKeyChain && len(frontier) > 0; i++ {
		var next []release.PublicKey
		for _, k := range frontier {
			for _, nk := range nextKeys(k, recs) {
				if seen[nk.String()] {
					continue
				}
				seen[nk.String()] = true
				ring.parent[nk.String()] = k
				if _, dup := ring.next[nk.ID()]; !dup {
					ring.next[nk.ID()] = nk
				}
				next = append(next, nk)
			}
		}
		frontier = next
	}
	ring.walked = true
	return nil
}

// nextKeys returns the next keys that releases signed by k name, each
// signature verified.
func nextKeys(k release.PublicKey, recs []ReleaseRecord) []release.PublicKey {
	var out []release.PublicKey
	for _, rec := range recs {
		if rec.KeyID != k.ID() {
			continue
		}
		m, err := release.Verify(k, rec.Manifest, rec.Signature)
		if err != nil || m.NextKey == "" {
			continue
		}
		if nk, err := release.ParsePublicKey(m.NextKey); err == nil {
			out = append(out, nk)
		}
	}
	return out
}

// leftBehind returns the keys a rotation from the stored key to key to
// leaves behind, oldest (the stored key) first, and whether to descends
// from the stored key at all. The ring must be walked.
func (ring *keyring) leftBehind(to release.PublicKey) ([]release.PublicKey, bool) {
	var out []release.PublicKey
	for k := to; !k.Equal(ring.current); {
		p, ok := ring.parent[k.String()]
		if !ok || len(out) >= maxKeyChain {
			return nil, false
		}
		out = append(out, p)
		k = p
	}
	slices.Reverse(out)
	return out, true
}

// fleetKey returns the fleet key whose ID is id: the stored key, one it
// replaced, or one that descends from it (a rotation whose key record
// has not arrived yet). known is false when there is none, as when no
// key is stored yet.
func (b *batch) fleetKey(id string) (k release.PublicKey, known bool, err error) {
	ring, err := b.keyring()
	if err != nil || ring.current.IsZero() {
		return release.PublicKey{}, false, err
	}
	if k, ok := ring.byID[id]; ok {
		return k, true, nil
	}
	if err := b.walk(ring); err != nil {
		return release.PublicKey{}, false, err
	}
	k, known = ring.next[id]
	return k, known, nil
}

// retire returns the retired keys list after a rotation to key current
// that leaves the keys left behind: those appended (moved to the end if
// listed already), current taken out, the oldest dropped beyond
// maxKeyChain.
func retire(list []string, left []release.PublicKey, current string) []string {
	if k, err := release.ParsePublicKey(current); err == nil {
		current = k.String()
	}
	out := slices.Clone(list)
	for _, k := range left {
		s := k.String()
		out = append(slices.DeleteFunc(out, func(o string) bool { return o == s }), s)
	}
	out = slices.DeleteFunc(out, func(o string) bool { return o == current })
	if len(out) > maxKeyChain {
		out = out[len(out)-maxKeyChain:]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// admitReleaseKey returns what an imported fleet key (remote, the
// merge's result) may store in place of the stored one (local, if
// found), or nil when it may not. It may when none is stored (then the
// remote record is taken whole, its retired keys included), when it is
// the same public key (only who and when differ, and the merge kept the
// retired keys both copies list), or when it descends from the stored
// key: a chain of stored releases, each signed by the key before (the
// signature verified here) and naming the next as next_key, leads from
// the stored key to it. Then the keys that chain leaves behind join the
// stored retired keys: the list is computed here, never taken from the
// remote record.
//
// Why a broker checks: agents pin the key their enrolment token carried,
// and tokens carry this broker's fleet key. A broker that took any key a
// peer sent would let one compromised broker hand every agent enrolled
// later, anywhere in the fleet, a key of its own, and then sign updates
// for them. The first key is taken on trust (an admin set it on some
// broker); after that only the holder of the fleet's secret key can move
// it. A key refused here is not an error: the record is left as stored,
// and anti-entropy offers it again, so a rotation whose release arrives
// after the key is admitted once the release is stored.
func (b *batch) admitReleaseKey(local *ReleaseKeyRecord, found bool, remote *ReleaseKeyRecord) (*ReleaseKeyRecord, error) {
	if !found || !local.exists() || sameKey(local.PublicKey, remote.PublicKey) {
		return remote, nil
	}
	to, err := release.ParsePublicKey(remote.PublicKey)
	if err != nil {
		return nil, nil
	}
	ring, err := b.keyring()
	if err != nil {
		return nil, err
	}
	if err := b.walk(ring); err != nil {
		return nil, err
	}
	left, ok := ring.leftBehind(to)
	if !ok {
		b.s.log.Warn("replicated release key refused: no stored release signed by the fleet key names it as next key",
			"key_id", remote.KeyID, "set_by", remote.SetBy, "via", remote.Via, "fleet_key_id", local.KeyID)
		return nil, nil
	}
	c := *remote
	c.Retired = retire(local.Retired, left, c.PublicKey)
	return &c, nil
}

// admitRelease decides whether an imported release may be merged into
// the store. A release stored with the same manifest and signature may
// (its signature was verified when it was stored; the merge keeps a
// withdrawal). Any other must verify with the fleet key that signed it
// (fleetKey): one that does not is a forgery, an error wrapping
// ErrMalformed that refuses the import. One signed by a key this broker
// does not know yet (no fleet key is stored, or the key record of a
// rotation has not arrived) is deferred: left unstored, offered again by
// anti-entropy, as admitReleaseKey does with a key. A version names one
// set of bytes forever: a genuine release of a stored version with other
// bytes (one version published twice, on two sides of a partition) is
// logged and left unstored, the stored one kept.
func (b *batch) admitRelease(rec *ReleaseRecord) (ok, deferred bool, err error) {
	local, found, err := b.release(rec.Version)
	if err != nil {
		return false, false, err
	}
	stored := found && local.exists()
	if stored && bytes.Equal(local.Manifest, rec.Manifest) && local.Signature == rec.Signature && local.KeyID == rec.KeyID {
		return true, false, nil
	}
	k, known, err := b.fleetKey(rec.KeyID)
	switch {
	case err != nil:
		return false, false, err
	case !known && stored:
		b.s.log.Warn("replicated release refused: another manifest or signature than the stored one, by a key this broker does not know",
			"version", rec.Version, "key_id", rec.KeyID, "published_by", rec.PublishedBy)
		return false, false, nil
	case !known:
		return false, true, nil
	}
	if _, err := release.Verify(k, rec.Manifest, rec.Signature); err != nil {
		return false, false, malformed("not signed by the fleet's key: %v", err)
	}
	if stored {
		b.s.log.Warn("replicated release refused: a version names one set of bytes, and this broker stores other ones",
			"version", rec.Version, "key_id", rec.KeyID, "published_by", rec.PublishedBy,
			"stored_key_id", local.KeyID, "stored_published_by", local.PublishedBy)
		return false, false, nil
	}
	return true, false, nil
}
