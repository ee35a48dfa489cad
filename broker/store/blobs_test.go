package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testBlob is random bytes and their name.
type testBlob struct {
	data []byte
	sha  string
}

func newTestBlob(tb testing.TB, size int) testBlob {
	tb.Helper()
	data := make([]byte, size)
	rand.Read(data)
	sum := sha256.Sum256(data)
	return testBlob{data: data, sha: hex.EncodeToString(sum[:])}
}

// chunk returns the chunk of b at offset.
func (b testBlob) chunk(offset int64) []byte {
	return b.data[offset:min(offset+BlobChunk, int64(len(b.data)))]
}

// writeBlob writes b's chunks from offset to the end.
func writeBlob(tb testing.TB, s *Store, b testBlob, offset int64, now time.Time) BlobMeta {
	tb.Helper()
	var m BlobMeta
	for off := offset; off < int64(len(b.data)); off += BlobChunk {
		var err error
		if m, err = s.WriteBlobChunk(b.sha, int64(len(b.data)), off, b.chunk(off), now); err != nil {
			tb.Fatalf("WriteBlobChunk at %d: %v", off, err)
		}
		if want := min(off+BlobChunk, int64(len(b.data))); m.Have != want {
			tb.Fatalf("after the chunk at %d: have %d, want %d", off, m.Have, want)
		}
	}
	return m
}

// storedChunks counts the chunk values stored under all blobs.
func storedChunks(tb testing.TB, s *Store) int {
	tb.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bktBlobs).Stats().KeyN
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestBlobWriteRead: a blob of two and a half chunks is written chunk by
// chunk, becomes whole with the last one, and reads back from any offset,
// one chunk at most per ReadBlobAt.
func TestBlobWriteRead(t *testing.T) {
	s, _ := newStore(t)
	b := newTestBlob(t, 2*BlobChunk+BlobChunk/2)
	if _, ok := s.BlobHave(b.sha); ok {
		t.Fatal("a blob never written is stored")
	}
	m := writeBlob(t, s, b, 0, t0)
	if !m.Whole() || m.Size != int64(len(b.data)) || m.State != nil || !m.Created.Equal(t0) || !m.LastUsed.Equal(t0) {
		t.Fatalf("meta after the last chunk: %+v", m)
	}
	if got, _ := s.BlobHave(b.sha); !got.Whole() {
		t.Fatalf("BlobHave = %+v, want whole", got)
	}
	for _, off := range []int64{0, 1, BlobChunk - 1, BlobChunk, 2*BlobChunk + 7, int64(len(b.data))} {
		r, err := s.ReadBlob(b.sha, off)
		if err != nil {
			t.Fatalf("ReadBlob at %d: %v", off, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, b.data[off:]) {
			t.Errorf("ReadBlob at %d: %d bytes, %v; want the %d bytes from there", off, len(got), err, len(b.data)-int(off))
		}
	}
	p := make([]byte, 3*BlobChunk)
	n, err := s.ReadBlobAt(b.sha, p, BlobChunk-10)
	if err != nil || n != 10 || !bytes.Equal(p[:n], b.data[BlobChunk-10:BlobChunk]) {
		t.Errorf("ReadBlobAt across a chunk boundary = %d, %v; want the 10 bytes to the boundary", n, err)
	}
	if n, err := s.ReadBlobAt(b.sha, p, int64(len(b.data))); n != 0 || err != io.EOF {
		t.Errorf("ReadBlobAt at the end = %d, %v; want 0, EOF", n, err)
	}
	if _, err := s.ReadBlobAt(newTestBlob(t, 10).sha, p, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadBlobAt of an unknown blob = %v, want ErrNotFound", err)
	}
}

// TestBlobResume: a blob cut off after its first chunk holds that chunk
// across a restart, refuses chunks at any other offset than its Have,
// and is completed from there; a partial blob reads to its Have.
func TestBlobResume(t *testing.T) {
	s, cfg := newStore(t)
	b := newTestBlob(t, 3*BlobChunk+100)
	size := int64(len(b.data))
	if _, err := s.WriteBlobChunk(b.sha, size, 0, b.chunk(0), t0); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, cfg)
	m, ok := s.BlobHave(b.sha)
	if !ok || m.Have != BlobChunk || m.Whole() {
		t.Fatalf("after a restart: %+v, %v; want %d bytes held", m, ok, BlobChunk)
	}
	got, err := s.ReadBlob(b.sha, 0)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := io.ReadAll(got); !bytes.Equal(raw, b.data[:BlobChunk]) {
		t.Errorf("a partial blob reads %d bytes, want its first %d", len(raw), BlobChunk)
	}
	for _, off := range []int64{0, 2 * BlobChunk} {
		if _, err := s.WriteBlobChunk(b.sha, size, off, b.chunk(off), t0); !errors.Is(err, ErrBlobOffset) {
			t.Errorf("chunk at %d with %d held = %v, want ErrBlobOffset", off, BlobChunk, err)
		}
	}
	if m := writeBlob(t, s, b, BlobChunk, t0.Add(time.Hour)); !m.Whole() || !m.LastUsed.Equal(t0.Add(time.Hour)) {
		t.Fatalf("resumed blob: %+v", m)
	}
	r, _ := s.ReadBlob(b.sha, 0)
	if raw, _ := io.ReadAll(r); !bytes.Equal(raw, b.data) {
		t.Error("the resumed blob does not read back as written")
	}
	if _, err := s.WriteBlobChunk(b.sha, size, 0, b.chunk(0), t0); !errors.Is(err, ErrBlobOffset) {
		t.Errorf("a chunk written to a whole blob = %v, want ErrBlobOffset", err)
	}
}

// TestBlobHashMismatch: bytes that do not hash to the blob's name are
// stored chunk by chunk until the last, which deletes them all.
func TestBlobHashMismatch(t *testing.T) {
	s, _ := newStore(t)
	b := newTestBlob(t, BlobChunk+10)
	other := newTestBlob(t, BlobChunk+10)
	size := int64(len(b.data))
	if _, err := s.WriteBlobChunk(b.sha, size, 0, other.chunk(0), t0); err != nil {
		t.Fatalf("first chunk: %v (the hash is checked only when whole)", err)
	}
	if _, err := s.WriteBlobChunk(b.sha, size, BlobChunk, other.chunk(BlobChunk), t0); !errors.Is(err, ErrBlobHash) {
		t.Fatalf("last chunk of the wrong bytes = %v, want ErrBlobHash", err)
	}
	if m, ok := s.BlobHave(b.sha); ok {
		t.Errorf("a blob that failed its hash is kept: %+v", m)
	}
	if n := storedChunks(t, s); n != 0 {
		t.Errorf("%d chunks left behind", n)
	}
	writeBlob(t, s, b, 0, t0) // the right bytes are taken afterwards
}

// TestBlobWriteRefusals: each malformed write is refused and stores
// nothing.
func TestBlobWriteRefusals(t *testing.T) {
	s, _ := newStore(t)
	b := newTestBlob(t, BlobChunk+10)
	size := int64(len(b.data))
	if _, err := s.WriteBlobChunk(b.sha, size, 0, b.chunk(0), t0); err != nil {
		t.Fatal(err)
	}
	before, _ := s.BlobHave(b.sha)
	tests := []struct {
		name      string
		sha       string
		size, off int64
		data      []byte
		want      error
	}{
		{"upper-case name", "AB" + b.sha[2:], size, BlobChunk, b.chunk(BlobChunk), ErrMalformed},
		{"short name", b.sha[:10], size, BlobChunk, b.chunk(BlobChunk), ErrMalformed},
		{"empty blob", b.sha, 0, 0, nil, ErrMalformed},
		{"over the limit", b.sha, 1<<28 + 1, BlobChunk, b.chunk(BlobChunk), ErrMalformed},
		{"unaligned", b.sha, size, BlobChunk + 1, b.chunk(BlobChunk)[1:], ErrBlobOffset},
		{"past the end", b.sha, size, 2 * BlobChunk, nil, ErrBlobOffset},
		{"short chunk", b.sha, size, BlobChunk, b.chunk(BlobChunk)[1:], ErrMalformed},
		{"other size", b.sha, size + 1, BlobChunk, append(slices.Clone(b.chunk(BlobChunk)), 0), ErrBlobSize},
	}
	for _, tt := range tests {
		_, err := s.WriteBlobChunk(tt.sha, tt.size, tt.off, tt.data, t0)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if after, _ := s.BlobHave(b.sha); after.Have != before.Have || !bytes.Equal(after.State, before.State) {
		t.Errorf("refused writes changed the blob: %+v, was %+v", after, before)
	}
	if n := storedChunks(t, s); n != 1 {
		t.Errorf("%d chunks stored, want the 1 written", n)
	}
}

// TestSweepBlobs: blobs the caller does not keep and that were last used
// before the cutoff are deleted; kept and recent ones stay.
func TestSweepBlobs(t *testing.T) {
	s, _ := newStore(t)
	kept, old, recent, partial := newTestBlob(t, 100), newTestBlob(t, 200), newTestBlob(t, 300), newTestBlob(t, BlobChunk+1)
	writeBlob(t, s, kept, 0, t0)
	writeBlob(t, s, old, 0, t0)
	writeBlob(t, s, recent, 0, t0.Add(23*time.Hour))
	if _, err := s.WriteBlobChunk(partial.sha, int64(len(partial.data)), 0, partial.chunk(0), t0); err != nil {
		t.Fatal(err)
	}
	keep := func(sha string) bool { return sha == kept.sha }
	gone, err := s.SweepBlobs(t0.Add(time.Hour), keep)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(gone)
	want := []string{old.sha, partial.sha}
	slices.Sort(want)
	if !slices.Equal(gone, want) {
		t.Errorf("swept %v, want %v", gone, want)
	}
	for _, b := range []testBlob{old, partial} {
		if _, ok := s.BlobHave(b.sha); ok {
			t.Errorf("swept blob %s still stored", b.sha[:8])
		}
	}
	for _, b := range []testBlob{kept, recent} {
		if m, ok := s.BlobHave(b.sha); !ok || !m.Whole() {
			t.Errorf("blob %s was not to be swept", b.sha[:8])
		}
	}
	if n := storedChunks(t, s); n != 2 {
		t.Errorf("%d chunks stored after the sweep, want 2", n)
	}
	// A download begun refreshes the blob's last use, at most hourly.
	if err := s.TouchBlob(recent.sha, t0.Add(23*time.Hour+time.Minute)); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.BlobHave(recent.sha); !m.LastUsed.Equal(t0.Add(23 * time.Hour)) {
		t.Errorf("touched within the hour: last used %v", m.LastUsed)
	}
	if err := s.TouchBlob(recent.sha, t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.BlobHave(recent.sha); !m.LastUsed.Equal(t0.Add(48 * time.Hour)) {
		t.Errorf("touched a day later: last used %v", m.LastUsed)
	}
}

// TestBlobsNotReplicated: blobs stay out of the digest and of every
// exchange, and a backup holds them.
func TestBlobsNotReplicated(t *testing.T) {
	a, b := newBroker(t, "b1", 0), newBroker(t, "b2", 0)
	before := a.Digest()
	blob := newTestBlob(t, BlobChunk+5)
	writeBlob(t, a.Store, blob, 0, t0)
	if a.Digest() != before {
		t.Error("a blob changed the digest")
	}
	converge(t, a.Store, b.Store)
	if _, ok := b.BlobHave(blob.sha); ok {
		t.Error("a blob was replicated")
	}
	var backup bytes.Buffer
	if _, err := a.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, 0)
	cfg.Path = writeTemp(t, backup.Bytes())
	restored := openStore(t, cfg)
	r, err := restored.ReadBlob(blob.sha, 0)
	if err != nil {
		t.Fatalf("the backup lacks the blob: %v", err)
	}
	if raw, _ := io.ReadAll(r); !bytes.Equal(raw, blob.data) {
		t.Error("the blob in the backup differs")
	}
}
