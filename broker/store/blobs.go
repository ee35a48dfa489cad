package store

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// Blobs: the release binaries, named by their SHA-256. They live in the
// broker's one bbolt file, so a backup holds them, but anti-entropy never
// carries them: a blob is up to 256 MiB, and a broker needs one only when
// an agent asks it for one, so brokers pull blobs from each other on
// demand (package broker/releases) instead.
//
// A blob is stored in chunks of BlobChunk bytes, each its own value under
// sha256 + 8-byte chunk index, and a BlobMeta under the sha256. Chunks are
// written in order, one commit each (WriteBlobChunk accepts only the
// chunk at the blob's Have), so an upload or a pull cut off anywhere
// resumes at Have and loses at most the chunk in flight. The SHA-256 of
// the bytes so far is kept in the meta between chunks (crypto/sha256's
// state marshals to about 100 bytes), so checking the whole blob when its
// last chunk arrives hashes only that chunk; a blob whose bytes do not
// hash to its name is deleted then.
//
// Reads copy one chunk at most per read transaction (ReadBlobAt). A
// download must not hold a read transaction while it writes to a slow
// peer: bbolt's commits that grow the file's memory mapping wait for
// every open read transaction, so one stalled agent would stall every
// check-in.

// BlobChunk is the size of a blob's chunks, and of each write.
const BlobChunk = 1 << 20

// Errors of blob writes, wrapped with the detail.
var (
	// ErrBlobOffset is a chunk that is not the next one the blob needs.
	ErrBlobOffset = errors.New("blob write out of order")
	// ErrBlobSize is a blob named with another size than it was begun with.
	ErrBlobSize = errors.New("blob size differs")
	// ErrBlobHash is a whole blob whose bytes do not hash to its name: it
	// was deleted.
	ErrBlobHash = errors.New("blob does not hash to its name")
)

// BlobMeta describes a stored blob, whole or partial.
type BlobMeta struct {
	Size int64 `json:"size"`
	// Have is how many bytes from the start are stored: Size once whole.
	Have    int64     `json:"have"`
	Created time.Time `json:"created"`
	// LastUsed is the last write, or the last download begun (TouchBlob).
	LastUsed time.Time `json:"last_used"`
	// State is the SHA-256 state over the first Have bytes, until whole.
	State []byte `json:"state,omitempty"`
}

// Whole reports whether every byte of the blob is stored.
func (m BlobMeta) Whole() bool { return m.Have == m.Size }

// blobName decodes a blob's name: 64 lower-case hex digits.
func blobName(sha string) ([]byte, error) {
	sum, err := hex.DecodeString(sha)
	if err != nil || len(sum) != sha256.Size || hex.EncodeToString(sum) != sha {
		return nil, fmt.Errorf("%w: blob name %q: want 64 lower-case hex digits", ErrMalformed, sha)
	}
	return sum, nil
}

// chunkKey is where chunk i of the blob named sum lives.
func chunkKey(sum []byte, i int64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, len(sum)+8), sum...), uint64(i))
}

// blobMeta reads a blob's meta in tx.
func blobMeta(tx *bolt.Tx, sum []byte) (BlobMeta, bool, error) {
	var m BlobMeta
	found, err := getJSON(tx.Bucket(bktBlobMeta), sum, &m)
	return m, found, err
}

// BlobHave returns a blob's meta, if any of it is stored.
func (s *Store) BlobHave(sha string) (BlobMeta, bool) {
	sum, err := blobName(sha)
	if err != nil {
		return BlobMeta{}, false
	}
	var m BlobMeta
	var found bool
	err = s.db.View(func(tx *bolt.Tx) error {
		m, found, err = blobMeta(tx, sum)
		return err
	})
	return m, found && err == nil
}

// WriteBlobChunk stores the chunk of the blob sha (size bytes in all) that
// starts at offset, which must be the blob's Have (zero for a new blob):
// BlobChunk bytes, or the rest of the blob for its last chunk. It returns
// the blob's meta after the write. The write that makes the blob whole
// checks its SHA-256; on a mismatch the blob is deleted and the error is
// ErrBlobHash. data must not change until WriteBlobChunk returns.
func (s *Store) WriteBlobChunk(sha string, size, offset int64, data []byte, now time.Time) (BlobMeta, error) {
	sum, err := checkChunk(sha, size, offset, data)
	if err != nil {
		return BlobMeta{}, err
	}
	// The hash is advanced outside the writer (it costs a millisecond or
	// two a chunk, which every other write would wait for); the writer
	// then refuses the chunk unless the state it started from is still
	// the stored one.
	old, _ := s.BlobHave(sha)
	state, err := advance(old, data)
	if err != nil {
		return BlobMeta{}, err
	}
	var out BlobMeta
	var bad bool
	err = s.write(func(b *batch) error {
		out, bad, err = b.writeChunk(sum, size, offset, old.State, state, data, now)
		return err
	})
	if err == nil && bad {
		err = fmt.Errorf("%w: blob %s: the %d bytes received hash to another SHA-256; it was deleted", ErrBlobHash, sha, size)
	}
	if err != nil {
		s.log.Warn("blob write refused", "blob", sha, "offset", offset, "err", err)
	}
	return out, err
}

// checkChunk validates a chunk write before it reaches the writer.
func checkChunk(sha string, size, offset int64, data []byte) ([]byte, error) {
	sum, err := blobName(sha)
	switch {
	case err != nil:
		return nil, err
	case size <= 0 || size > wire.MaxBlob:
		return nil, fmt.Errorf("%w: blob size %d, want 1 byte to %d MiB", ErrMalformed, size, wire.MaxBlob>>20)
	case offset < 0 || offset >= size || offset%BlobChunk != 0:
		return nil, fmt.Errorf("%w: chunk at %d of a %d-byte blob: want a multiple of %d below the size", ErrBlobOffset, offset, size, BlobChunk)
	case int64(len(data)) != min(BlobChunk, size-offset):
		return nil, fmt.Errorf("%w: chunk of %d bytes at %d of a %d-byte blob, want %d", ErrMalformed, len(data), offset, size, min(BlobChunk, size-offset))
	}
	return sum, nil
}

// advance returns the SHA-256 state after data, from the state in m.
func advance(m BlobMeta, data []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(m.State) > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(m.State); err != nil {
			return nil, fmt.Errorf("store: blob hash state: %w", err)
		}
	}
	h.Write(data)
	return h, nil
}

// writeChunk is WriteBlobChunk in the writer. from is the hash state the
// caller advanced; bad reports a whole blob that did not match its name
// (deleted, and committed so).
func (b *batch) writeChunk(sum []byte, size, offset int64, from []byte, h hash.Hash, data []byte, now time.Time) (BlobMeta, bool, error) {
	m, found, err := blobMeta(b.tx, sum)
	switch {
	case err != nil:
		return m, false, err
	case !found:
		m = BlobMeta{Size: size, Created: now.UTC()}
	case m.Size != size:
		return m, false, refuse(fmt.Errorf("%w: blob %x is %d bytes, not %d", ErrBlobSize, sum, m.Size, size))
	}
	if m.Have != offset || !bytes.Equal(m.State, from) {
		return m, false, refuse(fmt.Errorf("%w: chunk at %d, the store holds %d bytes of blob %x: resume there", ErrBlobOffset, offset, m.Have, sum))
	}
	if err := b.tx.Bucket(bktBlobs).Put(chunkKey(sum, offset/BlobChunk), data); err != nil {
		return m, false, err
	}
	m.Have += int64(len(data))
	m.LastUsed = now.UTC()
	m.State = nil
	if !m.Whole() {
		if m.State, err = h.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
			return m, false, err
		}
	} else if !bytes.Equal(h.Sum(nil), sum) {
		return BlobMeta{}, true, deleteBlob(b.tx, sum, m)
	}
	return m, false, putJSON(b.tx.Bucket(bktBlobMeta), sum, m)
}

// deleteBlob deletes a blob's chunks and meta in tx.
func deleteBlob(tx *bolt.Tx, sum []byte, m BlobMeta) error {
	chunks := tx.Bucket(bktBlobs)
	for i := int64(0); i*BlobChunk < m.Have; i++ {
		if err := chunks.Delete(chunkKey(sum, i)); err != nil {
			return err
		}
	}
	return tx.Bucket(bktBlobMeta).Delete(sum)
}

// ReadBlobAt copies bytes of the blob sha from offset into p: at most to
// the end of the chunk holding offset and to the blob's Have, so one call
// reads one chunk at most, in one short read transaction. At Have or
// beyond it returns 0 and io.EOF (a partial blob ends there for now); a
// blob not stored is ErrNotFound.
func (s *Store) ReadBlobAt(sha string, p []byte, offset int64) (int, error) {
	sum, err := blobName(sha)
	if err != nil {
		return 0, err
	}
	var n int
	err = s.db.View(func(tx *bolt.Tx) error {
		m, found, err := blobMeta(tx, sum)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("blob %s: %w", sha, ErrNotFound)
		case offset < 0:
			return fmt.Errorf("%w: negative offset", ErrMalformed)
		case offset >= m.Have:
			return io.EOF
		}
		chunk := tx.Bucket(bktBlobs).Get(chunkKey(sum, offset/BlobChunk))
		at := offset % BlobChunk
		if int64(len(chunk)) <= at {
			return fmt.Errorf("store: blob %s: chunk %d is missing", sha, offset/BlobChunk)
		}
		n = copy(p, chunk[at:min(int64(len(chunk)), m.Have-(offset-at))])
		return nil
	})
	return n, err
}

// ReadBlob returns a reader of the blob sha from offset to what the store
// holds: the whole blob, or a partial one up to its Have as each read
// finds it. It holds no transaction between reads.
func (s *Store) ReadBlob(sha string, offset int64) (io.Reader, error) {
	m, ok := s.BlobHave(sha)
	switch {
	case !ok:
		return nil, fmt.Errorf("blob %s: %w", sha, ErrNotFound)
	case offset < 0 || offset > m.Size:
		return nil, fmt.Errorf("%w: offset %d outside the %d-byte blob", ErrMalformed, offset, m.Size)
	}
	return &blobReader{s: s, sha: sha, off: offset}, nil
}

type blobReader struct {
	s   *Store
	sha string
	off int64
}

func (r *blobReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.s.ReadBlobAt(r.sha, p, r.off)
	r.off += int64(n)
	return n, err
}

// TouchBlob sets a blob's LastUsed to now (a download began), if it is
// stored and was last used more than an hour before: downloads of a
// popular blob cost one write an hour, not one each.
func (s *Store) TouchBlob(sha string, now time.Time) error {
	sum, err := blobName(sha)
	if err != nil {
		return err
	}
	if m, ok := s.BlobHave(sha); !ok || now.Sub(m.LastUsed) < time.Hour {
		return nil
	}
	return s.write(func(b *batch) error {
		m, found, err := blobMeta(b.tx, sum)
		if err != nil || !found {
			return err
		}
		m.LastUsed = now.UTC()
		return putJSON(b.tx.Bucket(bktBlobMeta), sum, m)
	})
}

// DeleteBlob deletes a blob, whole or partial. Deleting one not stored is
// not an error.
func (s *Store) DeleteBlob(sha string) error {
	sum, err := blobName(sha)
	if err != nil {
		return err
	}
	return s.write(func(b *batch) error {
		m, found, err := blobMeta(b.tx, sum)
		if err != nil || !found {
			return err
		}
		return deleteBlob(b.tx, sum, m)
	})
}

// BlobInfo is a stored blob in a listing.
type BlobInfo struct {
	SHA256 string
	BlobMeta
}

// Blobs lists the stored blobs, whole and partial.
func (s *Store) Blobs() ([]BlobInfo, error) {
	var out []BlobInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktBlobMeta).ForEach(func(k, v []byte) error {
			var m BlobMeta
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("blob %x: %w", k, err)
			}
			out = append(out, BlobInfo{SHA256: hex.EncodeToString(k), BlobMeta: m})
			return nil
		})
	})
	return out, err
}

// SweepBlobs deletes the blobs that keep does not want and that were last
// used before cutoff, each in its own write (a blob used meanwhile is
// kept), and returns their names.
func (s *Store) SweepBlobs(cutoff time.Time, keep func(sha string) bool) ([]string, error) {
	all, err := s.Blobs()
	if err != nil {
		return nil, fmt.Errorf("store: sweep blobs: %w", err)
	}
	var gone []string
	for _, bl := range all {
		if keep(bl.SHA256) || !bl.LastUsed.Before(cutoff) {
			continue
		}
		sum, _ := hex.DecodeString(bl.SHA256)
		deleted := false
		err := s.write(func(b *batch) error {
			m, found, err := blobMeta(b.tx, sum)
			if err != nil || !found || !m.LastUsed.Before(cutoff) {
				return err
			}
			deleted = true
			return deleteBlob(b.tx, sum, m)
		})
		if err != nil {
			return gone, fmt.Errorf("store: sweep blob %s: %w", bl.SHA256, err)
		}
		if deleted {
			gone = append(gone, bl.SHA256)
		}
	}
	return gone, nil
}
