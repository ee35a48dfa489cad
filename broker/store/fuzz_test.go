package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// The fuzz targets cover every decoder of what brokers exchange: the
// digest (binary) and the lists of versions, keys and records (JSON).
// Each is seeded with real messages from a store that holds every kind of
// record, tombstones included, and checks that whatever decodes encodes
// to something that decodes to the same value, and that every refusal
// wraps ErrMalformed.

// seedStore is a store holding every kind of record.
func seedStore(tb testing.TB) *broker {
	tb.Helper()
	s := newBroker(tb, "east", 3)
	seedFleet(tb, s.Store, []string{"12D3KooWm1", "12D3KooWm2"}, 4)
	hash := mustTechnician(tb, s.Store, "alice")
	mustLogin(tb, s.Store, hash, "12D3KooWalice")
	mustTechnician(tb, s.Store, "bob")
	if err := s.remove(Key{KindTechnician, "bob"}); err != nil {
		tb.Fatal(err)
	}
	if err := s.SetAdminHash(wire.HashSecret("admin"), t0); err != nil {
		tb.Fatal(err)
	}
	mustEnroll(tb, s.Store, mustToken(tb, s.Store, "acme", 1, t0.Add(time.Hour)), "12D3KooWm3", "fresh")
	return s
}

func fuzzRoundTrip[T any](t *testing.T, data []byte, decode func([]byte) (T, error)) (T, bool) {
	t.Helper()
	v1, err := decode(data)
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		return v1, false
	}
	m1, err := json.Marshal(v1)
	if err != nil {
		t.Fatalf("decoded value does not encode: %v", err)
	}
	v2, err := decode(m1)
	if err != nil {
		t.Fatalf("re-encoded value is refused: %v\ninput:      %q\nre-encoded: %q", err, data, m1)
	}
	m2, _ := json.Marshal(v2)
	if !bytes.Equal(m1, m2) {
		t.Fatalf("encodings differ:\n%s\n%s", m1, m2)
	}
	v3, err := decode(m2)
	if err != nil || !reflect.DeepEqual(v2, v3) {
		t.Fatalf("value changed in a round trip (%v):\n%#v\n%#v", err, v2, v3)
	}
	return v1, true
}

func FuzzDigest(f *testing.F) {
	s := seedStore(f)
	raw, _ := s.Digest().MarshalBinary()
	f.Add(raw)
	empty, _ := Digest{}.MarshalBinary()
	f.Add(empty)
	f.Add([]byte("rmd1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Digest
		if err := d.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		out, err := d.MarshalBinary()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		s.DiffBuckets(d)
	})
}

func FuzzDecodeVersions(f *testing.F) {
	s := seedStore(f)
	for b := range DigestBuckets {
		if vs := s.BucketVersions(b); len(vs) > 0 {
			f.Add(mustMarshal(f, vs))
		}
	}
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"kind":"client","id":"acme","clock":{"wall_ms":1,"counter":0,"origin":"x"}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if vs, ok := fuzzRoundTrip(t, data, DecodeVersions); ok {
			s.Want(vs)
		}
	})
}

func FuzzDecodeKeys(f *testing.F) {
	s := seedStore(f)
	f.Add(mustMarshal(f, allKeys(s.Store)))
	f.Add([]byte(`[{"kind":"admin","id":"admin"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if ks, ok := fuzzRoundTrip(t, data, DecodeKeys); ok {
			if _, err := s.Export(ks); err != nil {
				t.Fatalf("Export(decoded keys): %v", err)
			}
		}
	})
}

// FuzzDecodeRecords also imports what decodes into a store: a record that
// passes the decoder must be accepted by Import, and Import must never
// fail otherwise than with ErrMalformed.
func FuzzDecodeRecords(f *testing.F) {
	s := seedStore(f)
	recs, err := s.Export(allKeys(s.Store))
	if err != nil {
		f.Fatal(err)
	}
	// One record per seed: the fuzzer minimizes every new input it finds,
	// and minimizing a list of every record takes far longer.
	for _, r := range recs {
		f.Add(mustMarshal(f, []Record{r}))
	}
	// The store logs refusals; inside a fuzz target only t may log, so
	// this one logs nowhere.
	clk := newFakeClock(brokerStart.Add(time.Hour)) // after every clock in the seeds
	dst, err := Open(Config{Path: filepath.Join(f.TempDir(), "broker.db"), HistoryLimit: 3, Broker: "west", Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { dst.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, ok := fuzzRoundTrip(t, data, DecodeRecords)
		if !ok {
			return
		}
		if _, err := dst.Import(recs); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("Import(decoded records): %v", err)
		}
	})
}
