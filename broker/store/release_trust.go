package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/readymesh/readymesh/peer/release"
)

// Which release keys a broker trusts, and so which replicated releases
// and fleet keys it takes from its peers.
//
// The fleet's key is taken on trust once (an admin set it on some
// broker, or a broker with none takes a peer's first copy); after that it
// moves only along releases signed by the key before, each naming the
// next (admitReleaseKey). A replicated release is stored only once its
// signature verifies with the fleet key that made it (admitRelease): the
// stored key, one it replaced (the key record's Retired list), or one a
// stored release names as its successor; and no key signs a version
// after the release that named its successor (a key is often retired
// because it leaked). Agents would refuse a forged release by the key they
// pin, but a broker that stored one would list it and roll it out, and
// pass it to every other broker.
//
// The retired keys are each broker's own: computed from the rotations it
// stored, or taken with the first key it learned. A history cannot be
// proven backwards (anyone can sign a release naming the fleet's key as
// next), so a peer's list is never merged into one a broker has; a key
// an admin set by hand has none.

// maxKeyChain bounds the rotations a broker follows from its key, and
// the retired keys it keeps.
const maxKeyChain = 64

// keyring is the fleet's release keys as of a batch: the stored key, the
// keys it replaced, and (walked when needed) those that descend from it
// through stored releases. A batch reads it once and drops it when it
// writes a release or the fleet key (putControl).
type keyring struct {
	current release.PublicKey  // the zero key: none is stored
	byID    map[string]ringKey // the stored key and the retired ones
	walked  bool
	// since is the version of the release that made the stored key the
	// fleet's (the newest Until of the retired keys; "" for the first).
	since string
	// next holds the descendants by ID; parent the key whose release
	// named each, and via that release's version; limit the version of
	// the first release by each key (the stored one included) that named
	// a successor, after the key became the fleet's ("" for none): the
	// last version the key may sign. All by the key's base64 line.
	next   map[string]release.PublicKey
	parent map[string]release.PublicKey
	via    map[string]string
	limit  map[string]string
}

// ringKey is a key of the ring, and the last version it may sign ("" for
// the stored key and its descendants: no limit).
type ringKey struct {
	key   release.PublicKey
	until string
}

// keyring returns the batch's keyring, reading it if needed.
func (b *batch) keyring() (*keyring, error) {
	if b.ring != nil {
		return b.ring, nil
	}
	ring := &keyring{byID: map[string]ringKey{}}
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
		ring.byID[k.ID()] = ringKey{key: k}
		// The newest first: of two keys with one ID, the later is used.
		for i := len(rec.Retired) - 1; i >= 0; i-- {
			old, err := release.ParsePublicKey(rec.Retired[i].Key)
			if err != nil {
				return nil, fmt.Errorf("stored retired release key %d: %w", i, err)
			}
			if _, dup := ring.byID[old.ID()]; !dup {
				ring.byID[old.ID()] = ringKey{key: old, until: rec.Retired[i].Until}
			}
			if u := rec.Retired[i].Until; ring.since == "" || release.CompareVersions(u, ring.since) > 0 {
				ring.since = u
			}
		}
	}
	b.ring = ring
	return ring, nil
}

// walk finds the keys that descend from the stored key, up to
// maxKeyChain rotations away: each named as next_key by a stored release
// that the key before it signed (the signature verified), of a version
// after the one that made that key the fleet's. A rotation from before
// (A→B, then B→A: the first names B again) leads nowhere, so an old copy
// of a key the fleet left cannot move a broker back to it. It notes each
// key's limit on the way.
func (b *batch) walk(ring *keyring) error {
	if ring.walked {
		return nil
	}
	ring.next, ring.parent, ring.via, ring.limit = map[string]release.PublicKey{}, map[string]release.PublicKey{}, map[string]string{}, map[string]string{}
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
	// A retired key is never stepped onto again: a broker that knows the
	// fleet left it does not go back, whatever a release names.
	seen := map[string]bool{}
	for _, rk := range ring.byID {
		seen[rk.key.String()] = true
	}
	frontier := []release.PublicKey{ring.current}
	for i := 0; i < maxKeyChain && len(frontier) > 0; i++ {
		var next []release.PublicKey
		for _, k := range frontier {
			since := ring.since
			if !k.Equal(ring.current) {
				since = ring.via[k.String()]
			}
			var steps []ringKey
			for _, step := range nextKeys(k, recs) {
				if since == "" || release.CompareVersions(step.until, since) > 0 {
					steps = append(steps, step)
				}
			}
			for _, step := range steps {
				if l := ring.limit[k.String()]; l == "" || release.CompareVersions(step.until, l) < 0 {
					ring.limit[k.String()] = step.until
				}
			}
			if len(steps) > 1 {
				// A key names one successor; two mean its secret leaked.
				// Follow neither: an admin must settle which is the fleet's.
				b.s.log.Error("release key fork: one key signed two releases naming a next key; following neither",
					"key_id", k.ID(), "first", steps[0].until, "second", steps[1].until)
				continue
			}
			for _, step := range steps {
				nk := step.key
				if seen[nk.String()] {
					continue
				}
				seen[nk.String()] = true
				ring.parent[nk.String()] = k
				ring.via[nk.String()] = step.until
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
// signature verified, with the version of the release that named it.
func nextKeys(k release.PublicKey, recs []ReleaseRecord) []ringKey {
	var out []ringKey
	for _, rec := range recs {
		if rec.KeyID != k.ID() {
			continue
		}
		if m, err := release.Parse(rec.Manifest); err != nil || m.NextKey == "" {
			continue // most releases name no next key: no signature to check
		}
		m, err := release.Verify(k, rec.Manifest, rec.Signature)
		if err != nil || m.NextKey == "" {
			continue
		}
		if nk, err := release.ParsePublicKey(m.NextKey); err == nil {
			out = append(out, ringKey{key: nk, until: m.Version})
		}
	}
	return out
}

// namesNextKey reports whether a release's manifest names a next key
// (one that does not parse names none).
func namesNextKey(rec *ReleaseRecord) bool {
	m, err := release.Parse(rec.Manifest)
	return err == nil && m.NextKey != ""
}

// leftBehind returns the keys a rotation from the stored key to key to
// leaves behind, oldest (the stored key) first, each with the version of
// the release that retired it, and whether to descends from the stored
// key at all. The ring must be walked.
func (ring *keyring) leftBehind(to release.PublicKey) ([]RetiredKey, bool) {
	var out []RetiredKey
	for k := to; !k.Equal(ring.current); {
		p, ok := ring.parent[k.String()]
		if !ok || len(out) >= maxKeyChain {
			return nil, false
		}
		out = append(out, RetiredKey{Key: p.String(), Until: ring.via[k.String()]})
		k = p
	}
	slices.Reverse(out)
	return out, true
}

// fleetKey returns the fleet key whose ID is id, with the last version
// it may sign ("" for no limit): the stored key, one it replaced, or one
// that descends from it (a rotation whose key record has not arrived
// yet). known is false when there is none, as when no key is stored yet.
func (b *batch) fleetKey(id string) (k ringKey, known bool, err error) {
	ring, err := b.keyring()
	if err != nil || ring.current.IsZero() {
		return ringKey{}, false, err
	}
	if err := b.walk(ring); err != nil {
		return ringKey{}, false, err
	}
	if k, ok := ring.byID[id]; ok {
		if k.until == "" {
			k.until = ring.limit[k.key.String()]
		}
		return k, true, nil
	}
	nk, known := ring.next[id]
	return ringKey{key: nk, until: ring.limit[nk.String()]}, known, nil
}

// afterLimit reports whether a release of version v is past a key's last
// version until: later, or the same version with other build metadata.
func afterLimit(v, until string) bool {
	if until == "" {
		return false
	}
	c := release.CompareVersions(v, until)
	return c > 0 || c == 0 && v != until
}

// retire returns the retired keys list after a rotation to key current
// that leaves the keys left behind: those appended (moved to the end if
// listed already), current taken out, the oldest dropped beyond
// maxKeyChain.
func retire(list []RetiredKey, left []RetiredKey, current string) []RetiredKey {
	if k, err := release.ParsePublicKey(current); err == nil {
		current = k.String()
	}
	out := slices.Clone(list)
	for _, rk := range left {
		out = append(slices.DeleteFunc(out, func(o RetiredKey) bool { return o.Key == rk.Key }), rk)
	}
	out = slices.DeleteFunc(out, func(o RetiredKey) bool { return o.Key == current })
	if len(out) > maxKeyChain {
		out = out[len(out)-maxKeyChain:]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// admitReleaseKey returns what an imported fleet key may store in place
// of the stored one (local, if found), or nil when it may not. merged is
// the merge's result, remote the peer's copy. When none is stored the
// peer's copy is taken whole, its retired keys included: the first key
// is taken on trust. A copy of the same public key changes who and when
// (the merge's result), never the retired keys: this broker keeps its
// own.
// A copy of another key is taken only when it descends from the stored
// key: a chain of stored releases, each signed by the key before (the
// signature verified here) and naming the next as next_key, leads from
// the stored key to it. Then the keys that chain leaves behind join the
// stored retired keys: the list is computed here, never taken from the
// peer.
//
// Why a broker checks: agents pin the key their enrolment token carried,
// and tokens carry this broker's fleet key. A broker that took any key a
// peer sent would let one compromised broker hand every agent enrolled
// later, anywhere in the fleet, a key of its own, and then sign updates
// for them; one that took any retired key would store the releases such
// a key signed. A key refused here is not an error: the record is left as
// stored, and anti-entropy offers it again, so a rotation whose release
// arrives after the key is admitted once the release is stored.
func (b *batch) admitReleaseKey(local *ReleaseKeyRecord, found bool, merged, remote *ReleaseKeyRecord) (*ReleaseKeyRecord, error) {
	if !found || !local.exists() {
		return remote, nil
	}
	if sameKey(local.PublicKey, remote.PublicKey) {
		c := *merged
		c.Retired = local.Retired
		return &c, nil
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

// refusalLog keeps a refused release's warning to one an hour: a peer
// that holds it offers it again at every exchange.
type refusalLog struct {
	mu   sync.Mutex
	last map[string]time.Time // by version and key ID; at most refusalLogMax
}

const refusalLogMax = 1024

// due reports whether the refusal of version by key id may be logged now.
func (l *refusalLog) due(version, id string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := version + "/" + id
	if t, ok := l.last[k]; ok && now.Sub(t) < time.Hour {
		return false
	}
	if l.last == nil || len(l.last) >= refusalLogMax {
		l.last = map[string]time.Time{}
	}
	l.last[k] = now
	return true
}

// warnRefused logs the refusal of a replicated release, at most once an
// hour for each version and key.
func (b *batch) warnRefused(msg string, rec *ReleaseRecord, args ...any) {
	if b.s.refusals.due(rec.Version, rec.KeyID, b.s.now()) {
		b.s.log.Warn(msg, append([]any{"version", rec.Version, "key_id", rec.KeyID, "published_by", rec.PublishedBy}, args...)...)
	}
}

// admitRelease decides whether an imported release may be merged into
// the store. A release stored with the same manifest and signature may
// (its signature was verified when it was stored; the merge keeps a
// withdrawal). Any other must verify with the fleet key that signed it
// (fleetKey), and no key signs a version after the release that named
// its successor. One that fails is a forgery, or a leaked key's work: it is
// logged and left unstored, and the rest of the batch goes on (refusing
// the batch would cut this broker off from a peer that holds one such
// record, for good). One signed by a key this broker does not know yet
// (no fleet key is stored, or the key record of a rotation has not
// arrived) is deferred: left unstored, offered again by anti-entropy, as
// admitReleaseKey does with a key. A version names one set of bytes
// forever: a genuine release of a stored version with other bytes (one
// version published twice, on two sides of a partition) is logged and
// left unstored, the stored one kept.
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
		b.warnRefused("replicated release refused: another manifest or signature than the stored one, by a key this broker does not know", rec)
		return false, false, nil
	case !known:
		return false, true, nil
	}
	if _, err := release.Verify(k.key, rec.Manifest, rec.Signature); err != nil {
		b.warnRefused("replicated release refused: not signed by the fleet's key", rec, "err", err)
		b.refused++
		return false, false, nil
	}
	if namesNextKey(rec) && k.until != "" && rec.Version != k.until {
		b.warnRefused("replicated release refused: its key named a successor in another release already", rec, "rotation", k.until)
		b.refused++
		return false, false, nil
	}
	if afterLimit(rec.Version, k.until) {
		b.warnRefused("replicated release refused: signed by a key after the release that named its successor", rec, "last_version", k.until)
		b.refused++
		return false, false, nil
	}
	if stored {
		b.warnRefused("replicated release refused: a version names one set of bytes, and this broker stores other ones", rec,
			"stored_key_id", local.KeyID, "stored_published_by", local.PublishedBy)
		return false, false, nil
	}
	return true, false, nil
}
