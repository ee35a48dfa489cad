package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func testKey(id, via string, at time.Time) ReleaseKeyRecord {
	return ReleaseKeyRecord{PublicKey: publicKey(id), KeyID: id, SetBy: "admin", SetAt: at, Via: via}
}

// testRelease is a release of version signed by key id (releases_keys_test.go).
func testRelease(version, keyID string, at time.Time) ReleaseRecord {
	return signedRelease(version, keyID, "", at)
}

func binaryOf(b testBlob, platform string) wire.ReleaseBinary {
	return wire.ReleaseBinary{Platform: platform, SHA256: b.sha, Size: int64(len(b.data))}
}

// releaseState is what a refused release write must leave unchanged.
type releaseState struct {
	Releases []ReleaseRecord
	Key      ReleaseKeyRecord
	HasKey   bool
}

func releasesOf(t *testing.T, s *Store) releaseState {
	t.Helper()
	rs, err := s.Releases()
	if err != nil {
		t.Fatal(err)
	}
	k, ok := s.ReleaseKey()
	return releaseState{Releases: rs, Key: k, HasKey: ok}
}

// TestPublishReleaseRules: a release is published only once the fleet
// trusts a key, only by that key, only with every binary stored whole at
// its size, and only once per version; each refusal changes nothing.
func TestPublishReleaseRules(t *testing.T) {
	s, _ := newStore(t)
	bin := newTestBlob(t, BlobChunk+10)
	partial := newTestBlob(t, BlobChunk+10)
	writeBlob(t, s, bin, 0, t0)
	if _, err := s.WriteBlobChunk(partial.sha, int64(len(partial.data)), 0, partial.chunk(0), t0); err != nil {
		t.Fatal(err)
	}
	linux := binaryOf(bin, "linux/amd64")
	wrongSize := linux
	wrongSize.Size++
	refused := func(what string, rec ReleaseRecord, bins []wire.ReleaseBinary, want error, text string) {
		t.Helper()
		before := releasesOf(t, s)
		keys, err := s.PublishRelease(rec, bins, nil)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), text) || keys != nil {
			t.Errorf("%s: %v (keys %v), want %v saying %q", what, err, keys, want, text)
		}
		if after := releasesOf(t, s); !reflect.DeepEqual(before, after) {
			t.Errorf("%s changed the store: %+v, was %+v", what, after, before)
		}
	}
	refused("before a key", testRelease("0.3.0", keyA, t0), []wire.ReleaseBinary{linux}, ErrNoReleaseKey, "no release key")

	if err := s.SetReleaseKey(testKey(keyA, "trust", t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetReleaseKey(testKey(keyB, "trust", t0)); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), keyA) {
		t.Errorf("a second trust = %v, want ErrExists naming %s", err, keyA)
	}
	refused("another key", testRelease("0.3.0", keyB, t0), []wire.ReleaseBinary{linux}, ErrReleaseKey, keyB)
	refused("a missing binary", testRelease("0.3.0", keyA, t0),
		[]wire.ReleaseBinary{linux, binaryOf(newTestBlob(t, 5), "windows/amd64")}, ErrBlobMissing, "windows/amd64")
	refused("a partial binary", testRelease("0.3.0", keyA, t0),
		[]wire.ReleaseBinary{binaryOf(partial, "darwin/arm64")}, ErrBlobMissing, "holds 1048576 of its 1048586 bytes")
	refused("a size the blob does not have", testRelease("0.3.0", keyA, t0), []wire.ReleaseBinary{wrongSize}, ErrBlobMissing,
		"the manifest says 1048587")
	bad := testRelease("0.3.0", keyA, t0)
	bad.Signature = ""
	refused("no signature", bad, []wire.ReleaseBinary{linux}, ErrMalformed, "signature")

	keys, err := s.PublishRelease(testRelease("0.3.0", keyA, t0), []wire.ReleaseBinary{linux}, nil)
	if err != nil || !reflect.DeepEqual(keys, []Key{{KindRelease, "0.3.0"}}) {
		t.Fatalf("PublishRelease = %v, %v", keys, err)
	}
	refused("the same version", testRelease("0.3.0", keyA, t0.Add(time.Hour)), []wire.ReleaseBinary{linux}, ErrExists,
		"published by admin")

	got, ok, err := s.Release("0.3.0")
	if err != nil || !ok || got.KeyID != keyA || got.Withdrawn || string(got.Manifest) != string(testManifest("0.3.0", "", t0)) {
		t.Errorf("Release = %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := s.Release("9.9.9"); ok || err != nil {
		t.Errorf("Release of an unknown version = %v, %v; want not found", ok, err)
	}
}

// TestReleaseKeyRotation: a release carrying a next key replaces the
// fleet's key as it is published; the next release must be signed by
// the new key.
func TestReleaseKeyRotation(t *testing.T) {
	s, _ := newStore(t)
	if _, ok := s.ReleaseKey(); ok {
		t.Fatal("a new store has a release key")
	}
	if err := s.SetReleaseKey(testKey(keyA, "trust", t0)); err != nil {
		t.Fatal(err)
	}
	next := testKey(keyB, "release 0.3.0", t0.Add(time.Hour))
	keys, err := s.PublishRelease(testRelease("0.3.0", keyA, t0), nil, &next)
	want := []Key{{KindRelease, "0.3.0"}, {KindReleaseKey, FleetKeyName}}
	if err != nil || !reflect.DeepEqual(keys, want) {
		t.Fatalf("PublishRelease with a next key = %v, %v; want %v", keys, err, want)
	}
	if k, ok := s.ReleaseKey(); !ok || k.KeyID != keyB || k.Via != "release 0.3.0" {
		t.Errorf("fleet key after the rotation: %+v, %v", k, ok)
	}
	if _, err := s.PublishRelease(testRelease("0.4.0", keyA, t0), nil, nil); !errors.Is(err, ErrReleaseKey) {
		t.Errorf("a release by the old key after the rotation = %v, want ErrReleaseKey", err)
	}
	if _, err := s.PublishRelease(testRelease("0.4.0", keyB, t0), nil, nil); err != nil {
		t.Errorf("a release by the new key: %v", err)
	}
	// A bad next key refuses the whole publication.
	badNext := testKey("short", "release 0.5.0", t0)
	if _, err := s.PublishRelease(testRelease("0.5.0", keyB, t0), nil, &badNext); !errors.Is(err, ErrMalformed) {
		t.Errorf("a malformed next key = %v, want ErrMalformed", err)
	}
	if _, ok, _ := s.Release("0.5.0"); ok {
		t.Error("the release with a malformed next key was stored")
	}
}

// TestWithdrawRelease: a withdrawal is recorded with who and when, once.
func TestWithdrawRelease(t *testing.T) {
	s, _ := newStore(t)
	if err := s.SetReleaseKey(testKey(keyA, "trust", t0)); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"0.2.0", "0.3.0"} {
		if _, err := s.PublishRelease(testRelease(v, keyA, t0.Add(time.Duration(i)*time.Hour)), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := s.WithdrawRelease("0.3.0", "bob", t0.Add(2*time.Hour))
	if err != nil || !rec.Withdrawn || rec.WithdrawnBy != "bob" || !rec.WithdrawnAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("WithdrawRelease = %+v, %v", rec, err)
	}
	if _, err := s.WithdrawRelease("0.3.0", "carol", t0.Add(3*time.Hour)); !errors.Is(err, ErrWithdrawn) || !strings.Contains(err.Error(), "bob") {
		t.Errorf("withdrawing twice = %v, want ErrWithdrawn naming bob", err)
	}
	if _, err := s.WithdrawRelease("1.0.0", "bob", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("withdrawing an unknown release = %v, want ErrNotFound", err)
	}
	rs, err := s.Releases()
	if err != nil || len(rs) != 2 || rs[0].Version != "0.2.0" || rs[0].Withdrawn || rs[1].Version != "0.3.0" || !rs[1].Withdrawn {
		t.Errorf("Releases = %+v, %v; want 0.2.0 then 0.3.0 (withdrawn)", rs, err)
	}
	if _, err := s.PublishRelease(testRelease("0.3.0", keyA, t0), nil, nil); !errors.Is(err, ErrExists) {
		t.Errorf("publishing a withdrawn version again = %v, want ErrExists", err)
	}
}

// TestReleasesReplicate: releases, withdrawals and the fleet key travel
// through Export and Import like every control record, the rotation
// included; the later write wins.
func TestReleasesReplicate(t *testing.T) {
	a, b := newBroker(t, "b1", 0), newBroker(t, "b2", 0)
	if err := a.SetReleaseKey(testKey(keyA, "trust", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PublishRelease(testRelease("0.3.0", keyA, t0), nil, nil); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)
	assertConverged(t, a.Store, b.Store)
	if k, ok := b.ReleaseKey(); !ok || k.KeyID != keyA {
		t.Errorf("b's fleet key: %+v, %v", k, ok)
	}
	if r, ok, err := b.Release("0.3.0"); err != nil || !ok || r.Withdrawn {
		t.Errorf("b's release: %+v, %v, %v", r, ok, err)
	}
	// b withdraws and rotates; a learns both.
	b.clock.Advance(time.Minute)
	if _, err := b.WithdrawRelease("0.3.0", "bob", b.clock.Now()); err != nil {
		t.Fatal(err)
	}
	next := testKey(keyB, "release 0.4.0", b.clock.Now())
	if _, err := b.PublishRelease(signedRelease("0.4.0", keyA, keyB, b.clock.Now()), nil, &next); err != nil {
		t.Fatal(err)
	}
	converge(t, a.Store, b.Store)
	assertConverged(t, a.Store, b.Store)
	if r, ok, err := a.Release("0.3.0"); err != nil || !ok || !r.Withdrawn || r.WithdrawnBy != "bob" {
		t.Errorf("a's 0.3.0 after b withdrew it: %+v, %v, %v", r, ok, err)
	}
	if k, ok := a.ReleaseKey(); !ok || k.KeyID != keyB {
		t.Errorf("a's fleet key after b's rotation: %+v, %v", k, ok)
	}
	// The key survives a restart of a (it is loaded into the index).
	a.reopen(t)
	assertConverged(t, a.Store, b.Store)
}
