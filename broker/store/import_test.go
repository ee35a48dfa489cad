package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// resnap replaces a machine record's snapshot with a changed copy and
// fixes the digest, so the change itself is what validation sees.
func resnap(r *Record, change func(*wire.Snapshot)) {
	var snap wire.Snapshot
	json.Unmarshal(r.Machine.Snapshot, &snap)
	change(&snap)
	raw, _ := json.Marshal(&snap)
	r.Machine.Snapshot = raw
	sum := sha256.Sum256(raw)
	c := *r.Machine.CheckIn
	c.Digest = hex.EncodeToString(sum[:])
	r.Machine.CheckIn = &c
}

// A batch with one bad record is refused whole with ErrMalformed, and the
// store does not change at all: not the good records before it, not the
// clock, not the digest.
func TestImportRefusesMalformed(t *testing.T) {
	src := newBroker(t, "east", 0)
	seedFleet(t, src.Store, []string{"m1", "m2"}, 2)
	hash := mustTechnician(t, src.Store, "alice")
	mustLogin(t, src.Store, hash, "12D3KooWalice")
	recs, err := src.Export(allKeys(src.Store))
	if err != nil {
		t.Fatal(err)
	}
	find := func(k Key) Record {
		i := slices.IndexFunc(recs, func(r Record) bool { return r.Key == k })
		if i < 0 {
			t.Fatalf("%s not exported", k)
		}
		// A deep copy, so each case changes only its own.
		var c Record
		json.Unmarshal(mustMarshal(t, recs[i]), &c)
		return c
	}
	m1, tok := Key{KindMachine, "m1"}, Key{KindToken, ""}
	for _, r := range recs {
		if r.Kind == KindToken {
			tok = r.Key
		}
	}
	tests := []struct {
		name   string
		key    Key
		break_ func(r *Record)
	}{
		{"unknown kind", m1, func(r *Record) { r.Kind = "printer" }},
		{"machine ID with a NUL", m1, func(r *Record) { r.ID = "m1\x00x" }},
		{"no payload", m1, func(r *Record) { r.Machine = nil }},
		{"two payloads", m1, func(r *Record) { r.Client = &ClientRecord{Name: "m1"} }},
		{"payload of another kind", Key{KindClient, "acme"}, func(r *Record) { r.Kind = KindAdmin; r.ID = AdminName }},
		{"seq 0", m1, func(r *Record) { r.Machine.CheckIn.Seq = 0 }},
		{"bad machine name", m1, func(r *Record) { r.Machine.Name = "web 1" }},
		{"snapshot does not match its digest", m1, func(r *Record) {
			r.Machine.Snapshot = bytes.Replace(r.Machine.Snapshot, []byte("debian"), []byte("ubuntu"), 1)
		}},
		{"snapshot not in stored form", m1, func(r *Record) {
			r.Machine.Snapshot = append([]byte(" "), r.Machine.Snapshot...)
			resnapRaw(r)
		}},
		{"snapshot with an unknown field", m1, func(r *Record) {
			r.Machine.Snapshot = append([]byte(`{"x":1,`), r.Machine.Snapshot[1:]...)
			resnapRaw(r)
		}},
		{"invalid snapshot", m1, func(r *Record) { resnap(r, func(s *wire.Snapshot) { s.Hostname = "" }) }},
		{"no snapshot", m1, func(r *Record) { r.Machine.Snapshot = nil }},
		{"snapshot without a check-in", m1, func(r *Record) { r.Machine.CheckIn = nil }},
		{"boot ID differs from the snapshot's", m1, func(r *Record) { r.Machine.CheckIn.BootID = "other" }},
		{"unknown reason", m1, func(r *Record) { r.Machine.CheckIn.Reason = "whim" }},
		{"first_seen lacks an update", m1, func(r *Record) { delete(r.Machine.FirstSeen, "openssl") }},
		{"first_seen names no update", m1, func(r *Record) { r.Machine.FirstSeen["nginx"] = t0 }},
		{"history out of order", m1, func(r *Record) { slices.Reverse(r.Machine.History) }},
		{"history above the check-in", m1, func(r *Record) { r.Machine.History[0].Seq = 99 }},
		{"history seq 0", m1, func(r *Record) { r.Machine.History[1].Seq = 0 }},
		{"history digest not hex", m1, func(r *Record) { r.Machine.History[0].Digest = strings.Repeat("z", 64) }},
		{"too much history", m1, func(r *Record) {
			r.Machine.CheckIn.Seq = MaxHistoryItems + 10
			r.Machine.History = nil
			for s := MaxHistoryItems + 1; s > 0; s-- {
				r.Machine.History = append(r.Machine.History, wire.HistoryItem{Seq: uint64(s), Reason: wire.ReasonInterval})
			}
		}},
		{"client name invalid", Key{KindClient, "acme"}, func(r *Record) { r.ID, r.Client.Name = "ac me", "ac me" }},
		{"client name differs from its key", Key{KindClient, "acme"}, func(r *Record) { r.Client.Name = "globex" }},
		{"clock without origin", Key{KindClient, "acme"}, func(r *Record) { r.Client.Clock.Origin = "" }},
		{"clock before 1970", Key{KindClient, "acme"}, func(r *Record) { r.Client.Clock.Wall = -5 }},
		{"born after the last write", Key{KindClient, "acme"}, func(r *Record) { r.Client.Born.Wall = r.Client.Clock.Wall + 1 }},
		{"tombstone with content", Key{KindClient, "acme"}, func(r *Record) { r.Client.Deleted = true }},
		{"token uses_left does not add up", tok, func(r *Record) { r.Token.UsesLeft++ }},
		{"token with negative uses", tok, func(r *Record) { r.Token.Spent["east"] = -1 }},
		{"token counter of a bad broker name", tok, func(r *Record) { r.Token.Spent["no such/broker"] = 1 }},
		{"technician keys unsorted", Key{KindTechnician, "alice"}, func(r *Record) {
			r.Technician.Keys = []string{"12D3KooWz", "12D3KooWa"}
		}},
		{"technician with an unknown mode", Key{KindTechnician, "alice"}, func(r *Record) { r.Technician.Modes = []string{"root"} }},
		{"used login with a hash", Key{KindTechnician, "alice"}, func(r *Record) { r.Technician.LoginHash = "abc" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := newBroker(t, "west", 0)
			seedFleet(t, dst.Store, []string{"w1"}, 1)
			good := find(Key{KindMachine, "m2"})
			bad := find(tt.key)
			tt.break_(&bad)
			before, digest := capture(t, dst.Store), dst.Digest()
			res, err := dst.Import([]Record{good, bad})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Import = %+v, %v; want ErrMalformed", res, err)
			}
			assertUnchanged(t, dst.Store, before)
			if dst.Digest() != digest {
				t.Error("digest changed")
			}
			// The decoder refuses it too.
			if _, err := DecodeRecords(mustMarshal(t, []Record{good, bad})); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeRecords = %v, want ErrMalformed", err)
			}
			// The good record alone goes in.
			if res := mustImport(t, dst.Store, good); res.Applied != 1 {
				t.Errorf("Import(good) = %+v", res)
			}
		})
	}
}

// resnapRaw fixes the digest after r's snapshot bytes were changed.
func resnapRaw(r *Record) {
	sum := sha256.Sum256(r.Machine.Snapshot)
	c := *r.Machine.CheckIn
	c.Digest = hex.EncodeToString(sum[:])
	r.Machine.CheckIn = &c
}

func TestImportLimits(t *testing.T) {
	src := newBroker(t, "east", 0)
	seedFleet(t, src.Store, []string{"m1"}, 1)
	recs, _ := src.Export([]Key{machineKey("m1")})

	cfg := testConfig(t, 0)
	cfg.MaxSnapshot = 1000
	small := openStore(t, cfg)
	before := capture(t, small)
	if _, err := small.Import(recs); !errors.Is(err, ErrMalformed) {
		t.Errorf("Import(snapshot over MaxSnapshot) = %v, want ErrMalformed", err)
	}
	if _, err := small.Import(make([]Record, MaxRecords+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("Import(%d records) = %v, want ErrMalformed", MaxRecords+1, err)
	}
	assertUnchanged(t, small, before)
}

// A record stamped further ahead than MaxClockSkew is deferred, not
// stored; the rest of the batch goes in. Once the clock catches up it is
// accepted.
func TestImportDefersFuture(t *testing.T) {
	s := newBroker(t, "east", 0)
	now := brokerStart
	ahead := func(d time.Duration) Stamp {
		c := Clock{Wall: now.Add(d).UnixMilli(), Origin: "west"}
		return stamp(c, c)
	}
	fast := clientRec("globex", 0, ahead(2*time.Minute))
	ok := clientRec("acme", 0, ahead(30*time.Second))
	seen := mrec(t, "m1", mspec{seq: 1, at: time.Minute, seen: 24*time.Hour + 2*time.Minute, variant: 1, hist: []uint64{1}})
	res, err := s.Import([]Record{fast, ok, seen})
	if err != nil || res.Applied != 1 || !slices.Equal(res.Deferred, []Key{fast.Key, seen.Key}) {
		t.Fatalf("Import = %+v, %v; want acme applied, globex and m1 deferred", res, err)
	}
	if s.ClientExists("globex") || !s.ClientExists("acme") {
		t.Error("wrong records stored")
	}
	// acme's clock was observed: a local write now is later than it.
	if _, err := s.CreateClient("initech", t0); err != nil {
		t.Fatal(err)
	}
	if c := clockOf(t, s.Store, Key{KindClient, "initech"}); !c.After(ok.Client.Clock) {
		t.Errorf("local clock %v is not after the imported %v", c, ok.Client.Clock)
	}
	s.clock.Advance(2 * time.Minute)
	if res := mustImport(t, s.Store, fast, seen); res.Applied != 2 {
		t.Errorf("Import later = %+v, want both applied", res)
	}
}

func TestDigestEncoding(t *testing.T) {
	s, _ := enrolled(t, 0, "m1", "m2", "m3")
	d := s.Digest()
	raw, err := d.MarshalBinary()
	if err != nil || len(raw) != DigestSize || DigestSize > 8<<10 {
		t.Fatalf("MarshalBinary = %d bytes, %v; want %d, under 8 KB", len(raw), err, DigestSize)
	}
	var got Digest
	if err := got.UnmarshalBinary(raw); err != nil || got != d {
		t.Fatalf("UnmarshalBinary = %v; round trip differs", err)
	}
	bad := [][]byte{nil, raw[:len(raw)-1], append(bytes.Clone(raw), 0), append([]byte("rmd2"), raw[4:]...)}
	empty := slices.IndexFunc(d.Buckets[:], func(b DigestBucket) bool { return b.Count == 0 })
	withHash := bytes.Clone(raw)
	withHash[4+12*empty] = 1 // an empty bucket with a hash
	bad = append(bad, withHash)
	for i, b := range bad {
		if err := got.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("bad digest %d: %v, want ErrMalformed", i, err)
		}
	}
	if got := s.DiffBuckets(d); len(got) != 0 {
		t.Errorf("DiffBuckets(own digest) = %v", got)
	}
	var nonEmpty []int
	for i, b := range d.Buckets {
		if b.Count > 0 {
			nonEmpty = append(nonEmpty, i)
		}
	}
	if got := s.DiffBuckets(Digest{}); !slices.Equal(got, nonEmpty) || len(got) == 0 {
		t.Errorf("DiffBuckets(empty) = %v, want the non-empty buckets %v", got, nonEmpty)
	}
	if s.BucketVersions(-1) != nil || s.BucketVersions(DigestBuckets) != nil {
		t.Error("BucketVersions out of range returned versions")
	}
}

// Local writes keep the digest current: each changes the bucket of the
// record it writes, and nothing else.
func TestDigestTracksLocalWrites(t *testing.T) {
	s, _ := enrolled(t, 0, "m1")
	hash := wire.HashSecret("x")
	steps := []struct {
		name  string
		write func() error
		keys  []Key
	}{
		{"check-in", func() error { _, err := s.CheckIn(checkIn("m1", 1, testSnapshot("m1", 1)), t0); return err }, []Key{machineKey("m1")}},
		{"last seen", func() error { return s.SetLastSeen(map[string]time.Time{"m1": t0.Add(time.Hour)}) }, []Key{machineKey("m1")}},
		{"client", func() error { _, err := s.CreateClient("globex", t0); return err }, []Key{{KindClient, "globex"}}},
		{"token", func() error {
			return s.CreateToken(hash, Token{Client: "acme", Uses: 1, UsesLeft: 1, ExpiresAt: t0.Add(time.Hour)})
		}, []Key{{KindToken, hash}}},
		{"enrol", func() error {
			_, err := s.Enroll(EnrollRequest{TokenHash: hash, MachineID: "m2", Name: "web2", Now: t0})
			return err
		}, []Key{{KindToken, hash}, machineKey("m2")}},
		{"technician", func() error { return s.CreateTechnician(techArgs("alice", "acme"), hash, t0.Add(time.Hour)) },
			[]Key{{KindTechnician, "alice"}}},
		{"login", func() error { _, err := s.Login(hash, "12D3KooWk", false, t0); return err }, []Key{{KindTechnician, "alice"}}},
		{"admin", func() error { return s.SetAdminHash(hash, t0) }, []Key{{KindAdmin, AdminName}, {KindTechnician, AdminName}}},
	}
	for _, st := range steps {
		before := s.Digest()
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var want []int
		for _, k := range st.keys {
			want = append(want, k.bucket())
		}
		slices.Sort(want)
		want = slices.Compact(want)
		if got := s.DiffBuckets(before); !slices.Equal(got, want) {
			t.Errorf("%s changed buckets %v, want %v", st.name, got, want)
		}
	}
}
