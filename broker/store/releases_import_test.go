package store

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// releaseSource is a broker holding the fleet key A and release 0.3.0
// signed by it: the records the tests below forge from.
func releaseSource(t *testing.T) *broker {
	t.Helper()
	return releaseSourceAt(t, "src", testRelease("0.3.0", keyA, t0))
}

// releaseSourceAt is a broker name trusting key A that stored rec.
func releaseSourceAt(t *testing.T, name string, rec ReleaseRecord) *broker {
	t.Helper()
	src := newBroker(t, name, 0)
	if err := src.SetReleaseKey(testKey(keyA, "trust", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := src.PublishRelease(rec, nil, nil); err != nil {
		t.Fatal(err)
	}
	return src
}

// TestImportRefusesForgedReleases: a replicated release or fleet key
// that is not what it claims to be refuses the import and changes
// nothing: a manifest of another version, a key ID that is not the
// signature's, a manifest that does not parse, a tombstone, a key ID
// that is not the public key's, a list of retired keys that are not
// keys, not in their stored form, listed twice, the key itself, or too
// many.
func TestImportRefusesForgedReleases(t *testing.T) {
	src := releaseSource(t)
	rel := exportOne(t, src.Store, Key{KindRelease, "0.3.0"})
	key := exportOne(t, src.Store, Key{KindReleaseKey, FleetKeyName})
	forged := func(f func(r *ReleaseRecord)) Record {
		c := *rel.Release
		f(&c)
		return Record{Key: rel.Key, Release: &c}
	}
	forgedKey := func(f func(r *ReleaseKeyRecord)) Record {
		c := *key.ReleaseKey
		f(&c)
		return Record{Key: key.Key, ReleaseKey: &c}
	}
	other := signedRelease("0.4.0", keyA, "", t0)
	byB := testRelease("0.3.0", keyB, t0)
	cases := []struct {
		name, want string
		rec        Record
	}{
		{"manifest of another version", `manifest of version "0.4.0"`, forged(func(r *ReleaseRecord) {
			r.Manifest, r.Signature = other.Manifest, other.Signature
		})},
		{"key ID not the signature's", "signed by key ID " + keyB, forged(func(r *ReleaseRecord) { r.Signature = byB.Signature })},
		{"manifest that does not parse", "manifest:", forged(func(r *ReleaseRecord) { r.Manifest = []byte(`{"version":"0.3.0"}`) })},
		{"release tombstone", "tombstone", forged(func(r *ReleaseRecord) { r.Deleted = true })},
		{"fleet key tombstone", "tombstone", forgedKey(func(r *ReleaseKeyRecord) { r.Deleted = true })},
		{"key ID not the public key's", "key ID " + keyB, forgedKey(func(r *ReleaseKeyRecord) { r.KeyID = keyB })},
		{"retired key that does not parse", "retired key 1", forgedKey(func(r *ReleaseKeyRecord) {
			r.Retired = retired(keyB, "0.3.0", "", "0.3.1")
			r.Retired[1].Key = "RWnotakey"
		})},
		{"retired key in a .pub file's form", "retired key 0 is not a public key's base64 line", forgedKey(func(r *ReleaseKeyRecord) {
			r.Retired = []RetiredKey{{Key: "untrusted comment: minisign public key\n" + publicKey(keyB), Until: "0.3.0"}}
		})},
		{"retired key listed twice", "listed twice", forgedKey(func(r *ReleaseKeyRecord) {
			r.Retired = retired(keyB, "0.3.0", keyC, "0.3.1", keyB, "0.3.2")
		})},
		{"retired key that is the fleet key", "is the fleet's key", forgedKey(func(r *ReleaseKeyRecord) {
			r.Retired = retired(keyA, "0.3.0")
		})},
		{"retired key without a version", "until", forgedKey(func(r *ReleaseKeyRecord) {
			r.Retired = retired(keyB, "")
		})},
		{"too many retired keys", "65 retired keys, limit 64", forgedKey(func(r *ReleaseKeyRecord) {
			r.Retired = slices.Repeat(retired(keyB, "0.3.0"), 65)
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := newBroker(t, "dst", 0)
			before := capture(t, dst.Store)
			_, err := dst.Import([]Record{key, tc.rec})
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Import = %v, want ErrMalformed saying %q", err, tc.want)
			}
			assertUnchanged(t, dst.Store, before)
			if _, ok := dst.ReleaseKey(); ok {
				t.Error("the refused batch stored the fleet key")
			}
		})
	}
	// The genuine records import.
	dst := newBroker(t, "dst", 0)
	mustImport(t, dst.Store, rel, key)
	if r, ok, err := dst.Release("0.3.0"); !ok || err != nil || r.KeyID != keyA {
		t.Errorf("the genuine release: %+v, %v, %v", r, ok, err)
	}
}

// TestImportReleaseKeyChange: a broker that trusts a key takes another
// from a peer only when stored releases, each signed by the key before,
// lead to it through next_key; a key of a peer's own, or one named by a
// release whose signature does not hold, changes nothing.
func TestImportReleaseKeyChange(t *testing.T) {
	dst := newBroker(t, "dst", 0)
	dst.clock.Advance(3 * time.Hour) // the peers' records below are in its past
	mustImport(t, dst.Store, exportOne(t, releaseSource(t).Store, Key{KindReleaseKey, FleetKeyName}))

	// A peer's key of its own, stamped later: refused, nothing changes.
	rogue := newBroker(t, "rogue", 0)
	rogue.clock.Advance(time.Hour)
	if err := rogue.SetReleaseKey(testKey(keyC, "trust", rogue.clock.Now())); err != nil {
		t.Fatal(err)
	}
	keyOf := func(s *broker) Record { return exportOne(t, s.Store, Key{KindReleaseKey, FleetKeyName}) }
	assertKey := func(what, want string) {
		t.Helper()
		if k, ok := dst.ReleaseKey(); !ok || k.KeyID != want {
			t.Errorf("%s: the fleet key is %s (%v), want %s", what, k.KeyID, ok, want)
		}
	}
	mustImport(t, dst.Store, keyOf(rogue))
	assertKey("a rogue key", keyA)

	// A release by A whose manifest was changed to name C: its signature
	// fails, so it is refused and does not lead to C.
	tampered := signedRelease("0.3.0", keyA, keyB, t0)
	tampered.Manifest = testManifest("0.3.0", keyC, t0)
	tamperer := releaseSourceAt(t, "tamperer", tampered)
	if res, err := dst.Import([]Record{exportOne(t, tamperer.Store, Key{KindRelease, "0.3.0"}), keyOf(rogue)}); err != nil || res.Refused != 1 {
		t.Errorf("Import of a tampered release = %+v, %v; want it refused", res, err)
	}
	assertKey("a key named by a tampered release", keyA)
	if _, ok, _ := dst.Release("0.3.0"); ok {
		t.Error("the tampered release was stored")
	}

	// The real rotation A → B → C, on a broker that followed it; dst
	// learns it in one batch, releases first as Export orders them.
	real := newBroker(t, "real", 0)
	if err := real.SetReleaseKey(testKey(keyA, "trust", t0)); err != nil {
		t.Fatal(err)
	}
	real.clock.Advance(2 * time.Hour)
	for _, step := range []struct{ version, by, next string }{{"0.4.0", keyA, keyB}, {"0.5.0", keyB, keyC}} {
		nk := testKey(step.next, "release "+step.version, real.clock.Now())
		if _, err := real.PublishRelease(signedRelease(step.version, step.by, step.next, real.clock.Now()), nil, &nk); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := real.Export([]Key{{KindRelease, "0.4.0"}, {KindRelease, "0.5.0"}, {KindReleaseKey, FleetKeyName}})
	if err != nil {
		t.Fatal(err)
	}
	// The key alone first: its releases are not here yet.
	mustImport(t, dst.Store, recs[2])
	assertKey("the rotated key before its releases", keyA)
	mustImport(t, dst.Store, recs...)
	assertKey("the rotated key with its releases", keyC)
	// And nothing moves it back to a key it came from.
	mustImport(t, dst.Store, keyOf(rogue))
	assertKey("a rogue key after the rotation", keyC)
}

// TestMergeReleaseWithdrawnSticky: a withdrawn copy of a release beats
// a later copy that is not withdrawn, whichever side merges.
func TestMergeReleaseWithdrawnSticky(t *testing.T) {
	src := releaseSource(t)
	src.clock.Advance(time.Minute)
	if _, err := src.WithdrawRelease("0.3.0", "bob", src.clock.Now()); err != nil {
		t.Fatal(err)
	}
	withdrawn := exportOne(t, src.Store, Key{KindRelease, "0.3.0"})
	later := *withdrawn.Release
	later.Withdrawn, later.WithdrawnBy, later.WithdrawnAt = false, "", time.Time{}
	later.Clock = withdrawn.Release.Clock
	later.Clock.Wall += time.Hour.Milliseconds()
	unwithdrawn := Record{Key: withdrawn.Key, Release: &later}

	key := exportOne(t, src.Store, Key{KindReleaseKey, FleetKeyName})
	for _, order := range [][]Record{{withdrawn, unwithdrawn}, {unwithdrawn, withdrawn}} {
		dst := newBroker(t, "dst", 0)
		dst.clock.Advance(2 * time.Hour)
		mustImport(t, dst.Store, key)
		for _, r := range order {
			mustImport(t, dst.Store, r)
		}
		got, ok, err := dst.Release("0.3.0")
		if err != nil || !ok || !got.Withdrawn || got.WithdrawnBy != "bob" {
			t.Errorf("after importing withdrawn=%v then withdrawn=%v: %+v, %v, %v", order[0].Release.Withdrawn,
				order[1].Release.Withdrawn, got, ok, err)
		}
	}
	if a, b := mergeRelease(withdrawn.Release, &later), mergeRelease(&later, withdrawn.Release); !reflect.DeepEqual(a, b) {
		t.Errorf("mergeRelease is not symmetric: %+v vs %+v", a, b)
	}
}
