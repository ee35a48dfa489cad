package store

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
)

// keyD is a key no rotation of the tests leads to: a peer's own.
var keyD = addSigner()

// forgedSignature signs manifest with key by, then writes key claim's
// ID into the signature: what a forger without claim's secret key can
// make.
func forgedSignature(t *testing.T, manifest []byte, by, claim string) string {
	t.Helper()
	var sig minisign.Signature
	if err := sig.UnmarshalText(minisign.Sign(signerOf(by).priv, manifest)); err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseUint(claim, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	sig.KeyID = id
	text, err := sig.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

// rotated is a broker that trusted key A and published, in order: 0.3.0
// by A; 0.4.0 by A naming B; 0.4.5 by B; 0.5.0 by B naming C; 0.6.0 by
// C. Its fleet key is C, having retired A then B.
func rotated(t *testing.T) *broker {
	t.Helper()
	real := newBroker(t, "real", 0)
	if err := real.SetReleaseKey(testKey(keyA, "trust", t0)); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ version, by, next string }{
		{"0.3.0", keyA, ""}, {"0.4.0", keyA, keyB}, {"0.4.5", keyB, ""}, {"0.5.0", keyB, keyC}, {"0.6.0", keyC, ""},
	} {
		real.clock.Advance(time.Minute)
		var nk *ReleaseKeyRecord
		if step.next != "" {
			k := testKey(step.next, "release "+step.version, real.clock.Now())
			k.Retired = retired(keyD, "9.9.9") // ignored: the store computes its own
			nk = &k
		}
		if _, err := real.PublishRelease(signedRelease(step.version, step.by, step.next, real.clock.Now()), nil, nk); err != nil {
			t.Fatalf("publish %s: %v", step.version, err)
		}
	}
	k, ok := real.ReleaseKey()
	if want := retired(keyA, "0.4.0", keyB, "0.5.0"); !ok || k.KeyID != keyC || !slices.Equal(k.Retired, want) {
		t.Fatalf("the fleet key after two rotations: %+v, want %s retiring A then B", k, keyC)
	}
	return real
}

// later is a broker whose clock is an hour past brokerStart, so that
// the records of the brokers above are in its past.
func later(t *testing.T, name string) *broker {
	t.Helper()
	b := newBroker(t, name, 0)
	b.clock.Advance(time.Hour)
	return b
}

func releaseOf(t *testing.T, s *broker, version string) Record {
	t.Helper()
	return exportOne(t, s.Store, Key{KindRelease, version})
}

func fleetKeyOf(t *testing.T, s *broker) Record {
	t.Helper()
	return exportOne(t, s.Store, Key{KindReleaseKey, FleetKeyName})
}

func assertStored(t *testing.T, s *broker, versions ...string) {
	t.Helper()
	for _, v := range versions {
		if _, ok, err := s.Release(v); !ok || err != nil {
			t.Errorf("release %s is not stored (%v)", v, err)
		}
	}
}

// TestImportVerifiesReleaseSignatures: a replicated release whose
// signature does not verify with the fleet key is refused and stored
// nowhere, while the rest of its batch goes in, whether the broker held
// the key before or it came in the same batch: a signature by another key
// that claims the fleet key's ID, and a manifest changed after it was
// signed (still parsing, still the same version). A forger can publish
// either on its own broker, whose store checks only the key ID.
func TestImportVerifiesReleaseSignatures(t *testing.T) {
	byD := signedRelease("0.4.0", keyA, "", t0)
	byD.Signature = forgedSignature(t, byD.Manifest, keyD, keyA)
	altered := signedRelease("0.4.0", keyA, "", t0)
	altered.Manifest = testManifest("0.4.0", "", t0.Add(time.Hour))
	src := releaseSource(t) // trusts A, published 0.3.0
	key, genuine := fleetKeyOf(t, src), releaseOf(t, src, "0.3.0")
	for _, tc := range []struct {
		name string
		rec  ReleaseRecord
	}{{"another key claiming the fleet key's ID", byD}, {"manifest changed after signing", altered}} {
		forged := releaseOf(t, releaseSourceAt(t, "forger", tc.rec), "0.4.0")
		t.Run(tc.name, func(t *testing.T) {
			// A broker that trusts A already.
			dst := later(t, "dst")
			mustImport(t, dst.Store, key)
			if res := mustImport(t, dst.Store, genuine, forged); res.Refused != 1 || res.Applied != 1 {
				t.Errorf("Import = %+v, want the forgery refused and the genuine release applied", res)
			}
			assertStored(t, dst, "0.3.0")
			if _, ok, _ := dst.Release("0.4.0"); ok {
				t.Error("the forgery was stored")
			}

			// A broker that learns the key in the same batch.
			fresh := later(t, "fresh")
			if res := mustImport(t, fresh.Store, forged, key, genuine); res.Refused != 1 || res.Applied != 2 {
				t.Errorf("Import with the key = %+v, want the forgery refused, the key and the genuine release applied", res)
			}
			assertStored(t, fresh, "0.3.0")
			if _, ok, _ := fresh.Release("0.4.0"); ok {
				t.Error("the forgery was stored")
			}
		})
	}
	// The genuine release goes in, in the batch that brings the key too,
	// whichever comes first.
	dst := later(t, "dst")
	if res := mustImport(t, dst.Store, genuine, key); res.Applied != 2 {
		t.Errorf("Import = %+v, want 2 applied", res)
	}
	assertStored(t, dst, "0.3.0")
}

// TestImportReleaseByRetiredKey: after the fleet key moved A → B → C, a
// release signed by A or B still imports: on a broker that joined after
// the rotations (it took the key record, history included, on trust as
// its first key) and on one that trusted A and followed the rotations
// through their releases (it computed the history itself). A release
// that claims a retired key's ID but is not its signature is refused, and
// so is one the retired key really signed, of a version after the release
// that retired it: a key is often retired because it leaked.
func TestImportReleaseByRetiredKey(t *testing.T) {
	real := rotated(t)
	old := []Record{releaseOf(t, real, "0.3.0"), releaseOf(t, real, "0.4.5")}
	forgedRec := signedRelease("0.3.1", keyA, "", t0)
	forgedRec.Signature = forgedSignature(t, forgedRec.Manifest, keyD, keyA)
	forger := newBroker(t, "forger", 0)
	if err := forger.SetReleaseKey(testKey(keyA, "trust", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := forger.PublishRelease(forgedRec, nil, nil); err != nil {
		t.Fatal(err)
	}
	forged := releaseOf(t, forger, "0.3.1")
	leaked := releaseOf(t, releaseSourceAt(t, "leaked", signedRelease("0.4.1", keyA, "", t0)), "0.4.1")

	// Joined after the rotations: the key record first, on its own.
	late := later(t, "late")
	mustImport(t, late.Store, fleetKeyOf(t, real))
	mustImport(t, late.Store, append(old, releaseOf(t, real, "0.6.0"))...)
	assertStored(t, late, "0.3.0", "0.4.5", "0.6.0")

	// Trusted A (it has 0.3.0 from before the rotation), then took the
	// rotation in one batch: 0.4.0 (A names B), 0.5.0 (B, known only
	// through 0.4.0, names C), and the key C, which goes after them.
	witness := later(t, "witness")
	mustImport(t, witness.Store, exportOne(t, releaseSource(t).Store, Key{KindReleaseKey, FleetKeyName}))
	mustImport(t, witness.Store, releaseOf(t, real, "0.3.0"))
	mustImport(t, witness.Store, fleetKeyOf(t, real), releaseOf(t, real, "0.4.0"), releaseOf(t, real, "0.5.0"))
	k, ok := witness.ReleaseKey()
	if want := retired(keyA, "0.4.0", keyB, "0.5.0"); !ok || k.KeyID != keyC || !slices.Equal(k.Retired, want) {
		t.Fatalf("the witness's fleet key: %+v, want %s retiring A then B", k, keyC)
	}
	mustImport(t, witness.Store, old...) // 0.4.5 is by B, retired before it arrived
	assertStored(t, witness, "0.3.0", "0.4.0", "0.4.5", "0.5.0")

	for _, s := range []*broker{late, witness} {
		if res := mustImport(t, s.Store, forged, leaked); res.Refused != 2 {
			t.Errorf("%s: a forgery claiming retired key A, and 0.4.1 by A after 0.4.0 retired it = %+v, want both refused", s.cfg.Broker, res)
		}
		for _, v := range []string{"0.3.1", "0.4.1"} {
			if _, ok, _ := s.Release(v); ok {
				t.Errorf("%s stored %s", s.cfg.Broker, v)
			}
		}
		converge(t, real.Store, s.Store)
		assertConverged(t, real.Store, s.Store)
	}
}

// TestImportReleaseBeforeItsKey: a release signed by a key the broker
// does not know yet is neither stored nor an error, but deferred, and
// imports once the key is known: before any fleet key, and before the
// release that rotates to its key. In one batch, the key goes first.
func TestImportReleaseBeforeItsKey(t *testing.T) {
	src := releaseSource(t)
	rel, key := releaseOf(t, src, "0.3.0"), fleetKeyOf(t, src)
	dst := later(t, "dst")
	before := capture(t, dst.Store)
	res, err := dst.Import([]Record{rel})
	if err != nil || res.Applied != 0 || !slices.Equal(res.Deferred, []Key{rel.Key}) {
		t.Errorf("Import before the key = %+v, %v; want %s deferred", res, err, rel.Key)
	}
	assertUnchanged(t, dst.Store, before)
	mustImport(t, dst.Store, key)
	mustImport(t, dst.Store, rel)
	assertStored(t, dst, "0.3.0")

	// A release by B before the release by A that names B: deferred,
	// then taken once 0.4.0 is stored, before the key record of B.
	real := rotated(t)
	dst = later(t, "dst2")
	mustImport(t, dst.Store, key)
	res, err = dst.Import([]Record{releaseOf(t, real, "0.4.5")})
	if err != nil || len(res.Deferred) != 1 {
		t.Errorf("Import of a release by B before A named B = %+v, %v; want it deferred", res, err)
	}
	mustImport(t, dst.Store, releaseOf(t, real, "0.4.0"))
	mustImport(t, dst.Store, releaseOf(t, real, "0.4.5"))
	assertStored(t, dst, "0.4.0", "0.4.5")
	if k, _ := dst.ReleaseKey(); k.KeyID != keyA {
		t.Errorf("the fleet key moved to %s without its key record", k.KeyID)
	}
}

// TestReleaseKeyHistoryMerge: a broker's retired keys are its own. The
// merge of two copies of one key takes the later whole, and the broker
// importing keeps its list: a peer's copy neither adds a key (one of its
// own, to sign "old" releases with) nor takes one away, on a broker that
// followed the rotations or on one that never rotated (its first key set
// by hand on another broker). A broker whose key an admin set here by
// hand takes the first peer copy's list, once.
func TestReleaseKeyHistoryMerge(t *testing.T) {
	real := rotated(t)
	k := fleetKeyOf(t, real).ReleaseKey
	history := retired(keyA, "0.4.0", keyB, "0.5.0")

	rogue := *k
	rogue.Retired = retired(keyD, "0.9.0", keyA, "0.4.0", keyB, "0.5.0")
	rogue.SetBy, rogue.Clock.Wall = "mallory", k.Clock.Wall+1
	short := *k
	short.Retired, short.Clock.Wall = nil, k.Clock.Wall+2
	if a, b := mergeReleaseKey(k, &rogue), mergeReleaseKey(&rogue, k); !reflect.DeepEqual(a, b) || a != &rogue {
		t.Errorf("mergeReleaseKey is not the later copy whole: %+v, %+v", a, b)
	}

	// Copies naming D, or none, stamped later: the history stays A, B,
	// the later copy's other fields are taken, and a release by D is not.
	dst := later(t, "dst")
	mustImport(t, dst.Store, Record{Key: Key{KindReleaseKey, FleetKeyName}, ReleaseKey: k})
	for _, c := range []*ReleaseKeyRecord{&rogue, &short} {
		mustImport(t, dst.Store, Record{Key: Key{KindReleaseKey, FleetKeyName}, ReleaseKey: c})
		if got, _ := dst.ReleaseKey(); !slices.Equal(got.Retired, history) || got.SetBy != c.SetBy {
			t.Errorf("after a copy retiring %v: %+v, want %s's fields retiring A and B", c.Retired, got, c.SetBy)
		}
	}
	byD := newBroker(t, "byd", 0)
	if err := byD.SetReleaseKey(testKey(keyD, ViaTrust, t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := byD.PublishRelease(testRelease("0.3.9", keyD, t0), nil, nil); err != nil {
		t.Fatal(err)
	}
	if res, err := dst.Import([]Record{releaseOf(t, byD, "0.3.9")}); err != nil || len(res.Deferred) != 1 {
		t.Errorf("Import of a release by D = %+v, %v; want it deferred", res, err)
	}

	// A fleet that never rotated: every broker holds key A as an admin
	// set it, with no history. A copy naming D as retired changes nothing.
	never := later(t, "never")
	mustImport(t, never.Store, fleetKeyOf(t, releaseSource(t)))
	poisoned := *fleetKeyOf(t, releaseSource(t)).ReleaseKey
	for _, wall := range []int64{-1000, 1000} {
		c := poisoned
		c.Retired, c.Clock.Wall, c.Born.Wall = retired(keyD, "0.9.0"), poisoned.Clock.Wall+wall, poisoned.Born.Wall+wall
		mustImport(t, never.Store, Record{Key: Key{KindReleaseKey, FleetKeyName}, ReleaseKey: &c})
		if got, _ := never.ReleaseKey(); got.Retired != nil {
			t.Errorf("a copy retiring D, stamped %+d ms: the history is %v, want none", wall, got.Retired)
		}
	}
	if res, err := never.Import([]Record{releaseOf(t, byD, "0.3.9")}); err != nil || len(res.Deferred) != 1 {
		t.Errorf("Import of a release by D after the copies = %+v, %v; want it deferred", res, err)
	}

	// A rotation's copy naming D as retired: the broker that follows the
	// rotation retires only the key it leaves behind, A.
	rot := releaseSource(t)
	rot.clock.Advance(time.Minute)
	next := testKey(keyB, "release 0.4.0", rot.clock.Now())
	if _, err := rot.PublishRelease(signedRelease("0.4.0", keyA, keyB, rot.clock.Now()), nil, &next); err != nil {
		t.Fatal(err)
	}
	rotKey := fleetKeyOf(t, rot)
	rotKey.ReleaseKey.Retired = retired(keyD, "0.3.5", keyA, "0.4.0")
	dst = later(t, "dst2")
	mustImport(t, dst.Store, exportOne(t, releaseSource(t).Store, Key{KindReleaseKey, FleetKeyName}))
	mustImport(t, dst.Store, rotKey, releaseOf(t, rot, "0.4.0"))
	if got, _ := dst.ReleaseKey(); got.KeyID != keyB || !slices.Equal(got.Retired, retired(keyA, "0.4.0")) {
		t.Errorf("after a rotation's copy naming D: %+v, want B retiring A only", got)
	}

	// A broker whose admin trusted C by hand before it heard the fleet
	// knows no history, and takes none from a copy of C: in either order
	// of the exchanges it stores what C signed, and the releases A and B
	// signed stay off it.
	for _, first := range []string{"real", "direct"} {
		real := rotated(t)
		direct := later(t, "direct")
		if err := direct.SetReleaseKey(testKey(keyC, ViaTrust, direct.clock.Now())); err != nil {
			t.Fatal(err)
		}
		real.clock.Advance(2 * time.Hour)
		a, b := real.Store, direct.Store
		if first == "direct" {
			a, b = b, a
		}
		for range 3 {
			pull(t, a, b)
			pull(t, b, a)
		}
		if kd := fleetKeyOf(t, direct).ReleaseKey; kd.Retired != nil || kd.KeyID != keyC {
			t.Errorf("%s first: the hand-set key took a history: %+v", first, kd)
		}
		if kr := fleetKeyOf(t, real).ReleaseKey; !slices.Equal(kr.Retired, history) {
			t.Errorf("%s first: the fleet's broker lost its history: %v", first, kr.Retired)
		}
		assertStored(t, direct, "0.6.0")
		if _, ok, _ := direct.Release("0.3.0"); ok {
			t.Errorf("%s first: a release by A was stored by a broker that never knew A", first)
		}
	}
}

// signedBy is release version signed by key id, as a broker trusting
// that key stored it.
func signedBy(t *testing.T, id, version string) Record {
	t.Helper()
	src := newBroker(t, "by-"+id, 0)
	if err := src.SetReleaseKey(testKey(id, ViaTrust, t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := src.PublishRelease(testRelease(version, id, t0), nil, nil); err != nil {
		t.Fatal(err)
	}
	return releaseOf(t, src, version)
}

// TestKeyLastVersion: a key signs no version after the release that
// named its successor. A broker on A that takes the whole rotation in one
// batch, releases by the leaked keys A and B in between, refuses those
// (0.4.1 by A after 0.4.0 named B, 0.7.0 by B after 0.5.0 named C, and
// 0.4.0+evil by A: the same version as its last with other build
// metadata) and stores the rest. Publishing keeps the rule: a rotation
// must be the newest release its key signs, and a retired key never
// returns.
func TestKeyLastVersion(t *testing.T) {
	real := rotated(t)
	var batch []Record
	for _, v := range []string{"0.6.0", "0.5.0", "0.4.5", "0.4.0"} {
		batch = append(batch, releaseOf(t, real, v))
	}
	leaked := []Record{signedBy(t, keyA, "0.4.1"), signedBy(t, keyB, "0.7.0"), signedBy(t, keyA, "0.4.0+evil")}
	batch = append(append([]Record{fleetKeyOf(t, real)}, leaked[:2]...), append(batch, leaked[2])...)
	dst := later(t, "dst")
	mustImport(t, dst.Store, exportOne(t, releaseSource(t).Store, Key{KindReleaseKey, FleetKeyName}))
	res := mustImport(t, dst.Store, batch...)
	if res.Refused != 3 {
		t.Errorf("Import = %+v, want the three releases by leaked keys refused", res)
	}
	assertStored(t, dst, "0.4.0", "0.4.5", "0.5.0", "0.6.0")
	for _, v := range []string{"0.4.1", "0.7.0", "0.4.0+evil"} {
		if _, ok, _ := dst.Release(v); ok {
			t.Errorf("%s, by a key past its last version, was stored", v)
		}
	}
	if k, _ := dst.ReleaseKey(); k.KeyID != keyC || !slices.Equal(k.Retired, retired(keyA, "0.4.0", keyB, "0.5.0")) {
		t.Errorf("the fleet key after the batch: %+v, want C retiring A and B", k)
	}

	// A rotation older than a release its key signed, and one back to a
	// retired key: refused, nothing written.
	src := releaseSource(t) // A signed 0.3.0
	src.clock.Advance(time.Minute)
	next := testKey(keyB, "release 0.2.9", src.clock.Now())
	before := capture(t, src.Store)
	if _, err := src.PublishRelease(signedRelease("0.2.9", keyA, keyB, src.clock.Now()), nil, &next); !errors.Is(err, ErrMalformed) ||
		!strings.Contains(err.Error(), "signed 0.3.0 already") {
		t.Errorf("a rotation in 0.2.9 after 0.3.0 = %v, want it refused", err)
	}
	assertUnchanged(t, src.Store, before)
	back := testKey(keyA, "release 0.7.0", real.clock.Now())
	if _, err := real.PublishRelease(signedRelease("0.7.0", keyC, keyA, real.clock.Now()), nil, &back); !errors.Is(err, ErrMalformed) ||
		!strings.Contains(err.Error(), "never returns") {
		t.Errorf("a rotation back to retired key A = %v, want it refused", err)
	}
}

// TestImportReleaseOfAnotherBytes: a version names one set of bytes. A
// genuine release of a stored version with another manifest is left
// unstored without failing the batch, and so is a forged one; the stored
// copy's withdrawal still merges.
func TestImportReleaseOfAnotherBytes(t *testing.T) {
	src := releaseSource(t)
	dst := later(t, "dst")
	mustImport(t, dst.Store, fleetKeyOf(t, src), releaseOf(t, src, "0.3.0"))

	twice := releaseOf(t, releaseSourceAt(t, "twice", testRelease("0.3.0", keyA, t0.Add(time.Minute))), "0.3.0")
	twice.Release.Clock.Wall += time.Minute.Milliseconds() // the later write
	before := capture(t, dst.Store)
	if res := mustImport(t, dst.Store, twice); res.Applied != 0 {
		t.Errorf("Import of another 0.3.0 = %+v, want nothing applied", res)
	}
	assertUnchanged(t, dst.Store, before)

	forged := *twice.Release
	forged.Manifest = testManifest("0.3.0", "", t0.Add(time.Hour))
	if res := mustImport(t, dst.Store, Record{Key: twice.Key, Release: &forged}); res.Refused != 1 {
		t.Errorf("Import of a forged other 0.3.0 = %+v, want it refused", res)
	}
	assertUnchanged(t, dst.Store, before)

	src.clock.Advance(time.Minute)
	if _, err := src.WithdrawRelease("0.3.0", "bob", src.clock.Now()); err != nil {
		t.Fatal(err)
	}
	mustImport(t, dst.Store, releaseOf(t, src, "0.3.0"))
	if r, ok, err := dst.Release("0.3.0"); !ok || err != nil || !r.Withdrawn || r.WithdrawnBy != "bob" {
		t.Errorf("after the withdrawal: %+v, %v, %v", r, ok, err)
	}
}

// TestReleaseKeyForks: a key names one successor. A broker that stored
// the rotation A → B refuses another release by A naming a key of its own
// (a leaked A), and does not move to that key; a rotation back to a key
// the broker retired is not followed; publishing refuses a rotation not
// newer than the one before; and a copy of the fleet key that differs is
// always wanted from a peer, whatever its stamp, so a copy of the old key
// stamped ahead cannot hide the rotation's.
func TestReleaseKeyForks(t *testing.T) {
	real := rotated(t)
	h := later(t, "h")
	mustImport(t, h.Store, exportOne(t, releaseSource(t).Store, Key{KindReleaseKey, FleetKeyName}))
	mustImport(t, h.Store, releaseOf(t, real, "0.4.0")) // A names B; B's key record not here yet

	leak := releaseSource(t) // holds A, as a leak would
	leak.clock.Advance(time.Minute)
	toD := testKey(keyD, "release 0.3.9", leak.clock.Now())
	if _, err := leak.PublishRelease(signedRelease("0.3.9", keyA, keyD, leak.clock.Now()), nil, &toD); err != nil {
		t.Fatal(err)
	}
	if res := mustImport(t, h.Store, releaseOf(t, leak, "0.3.9"), fleetKeyOf(t, leak)); res.Refused != 1 {
		t.Errorf("Import of a second rotation by A = %+v, want it refused", res)
	}
	if k, _ := h.ReleaseKey(); k.KeyID != keyA {
		t.Errorf("the fleet key moved to %s on a second rotation by A", k.KeyID)
	}

	// C, set by hand elsewhere, names A again: the broker that retired A
	// stays on C.
	direct := later(t, "direct")
	if err := direct.SetReleaseKey(testKey(keyC, ViaTrust, direct.clock.Now())); err != nil {
		t.Fatal(err)
	}
	back := testKey(keyA, "release 0.7.0", direct.clock.Now())
	if _, err := direct.PublishRelease(signedRelease("0.7.0", keyC, keyA, direct.clock.Now()), nil, &back); err != nil {
		t.Fatal(err)
	}
	real.clock.Advance(2 * time.Hour)
	mustImport(t, real.Store, releaseOf(t, direct, "0.7.0"), fleetKeyOf(t, direct))
	if k, _ := real.ReleaseKey(); k.KeyID != keyC || !slices.Equal(k.Retired, retired(keyA, "0.4.0", keyB, "0.5.0")) {
		t.Errorf("after a rotation back to A: %+v, want C retiring A and B", k)
	}

	// A rotation not newer than the one that made the key the fleet's
	// (B, which signed nothing else, names C in 0.9.1 after A named it in
	// 1.0.0): other brokers could not follow it.
	again := releaseSource(t)
	again.clock.Advance(time.Minute)
	toB := testKey(keyB, "release 1.0.0", again.clock.Now())
	if _, err := again.PublishRelease(signedRelease("1.0.0", keyA, keyB, again.clock.Now()), nil, &toB); err != nil {
		t.Fatal(err)
	}
	toC := testKey(keyC, "release 0.9.1", again.clock.Now())
	if _, err := again.PublishRelease(signedRelease("0.9.1", keyB, keyC, again.clock.Now()), nil, &toC); !errors.Is(err, ErrMalformed) ||
		!strings.Contains(err.Error(), "newer than the one before") {
		t.Errorf("a rotation in 0.9.1 after one in 1.0.0 = %v, want it refused", err)
	}

	local := Version{Key: Key{KindReleaseKey, FleetKeyName}, Clock: Clock{Wall: 2000}, Sum: 1}
	remote := Version{Key: Key{KindReleaseKey, FleetKeyName}, Clock: Clock{Wall: 1000}, Sum: 2}
	if !newer(local, true, remote) {
		t.Error("an older copy of the fleet key that differs is not wanted")
	}
	if remote.Sum = 1; newer(local, true, remote) {
		t.Error("an older copy of the fleet key that is the same is wanted")
	}
}
