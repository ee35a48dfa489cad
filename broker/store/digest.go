package store

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// DigestBuckets is how many buckets a Digest has. A record's bucket is the
// first byte of sha256(kind, 0, id).
const DigestBuckets = 256

// DigestSize is the length of an encoded Digest in bytes.
const DigestSize = len(digestMagic) + DigestBuckets*12

var digestMagic = [4]byte{'r', 'm', 'd', '1'}

// Digest summarises every record a store holds, machines and control
// records (tombstones included), in DigestBuckets buckets. Two stores hold
// the same records at the same versions exactly when their digests are
// equal (up to 64-bit hash collisions), and a bucket that differs says
// which records to compare. A store keeps its digest up to date as it
// commits, so taking one costs a copy of 3 KB.
type Digest struct {
	Buckets [DigestBuckets]DigestBucket
}

// DigestBucket is one bucket: how many records it holds and the xor of
// their version hashes. An empty bucket has hash zero.
type DigestBucket struct {
	Hash  uint64
	Count uint32
}

// MarshalBinary encodes d as "rmd1" followed by each bucket's hash (8
// bytes) and count (4 bytes), big-endian: DigestSize bytes.
func (d Digest) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, DigestSize)
	out = append(out, digestMagic[:]...)
	for _, b := range d.Buckets {
		out = binary.BigEndian.AppendUint64(out, b.Hash)
		out = binary.BigEndian.AppendUint32(out, b.Count)
	}
	return out, nil
}

// UnmarshalBinary decodes what MarshalBinary encodes. It refuses any other
// length, another magic, and an empty bucket with a non-zero hash.
func (d *Digest) UnmarshalBinary(data []byte) error {
	if len(data) != DigestSize {
		return malformed("digest is %d bytes, want %d", len(data), DigestSize)
	}
	if [4]byte(data[:4]) != digestMagic {
		return malformed("digest magic %q, want %q", data[:4], digestMagic[:])
	}
	var out Digest
	p := data[4:]
	for i := range out.Buckets {
		b := DigestBucket{Hash: binary.BigEndian.Uint64(p), Count: binary.BigEndian.Uint32(p[8:])}
		if b.Count == 0 && b.Hash != 0 {
			return malformed("digest bucket %d is empty with hash %x", i, b.Hash)
		}
		out.Buckets[i] = b
		p = p[12:]
	}
	*d = out
	return nil
}

// index is the in-memory summary behind Digest, DiffBuckets,
// BucketVersions and Want: every record's version, by bucket, and each
// bucket's count and hash. The Store's mu guards it; it changes only
// after a commit.
type index struct {
	digest  Digest
	entries [DigestBuckets]map[Key]entry
}

type entry struct {
	v Version
	h uint64 // v.hash()
}

func newIndex() *index {
	x := new(index)
	for i := range x.entries {
		x.entries[i] = map[Key]entry{}
	}
	return x
}

// set records v as the version of its key.
func (x *index) set(v Version) {
	x.setHashed(v, v.Key.bucket(), v.hash())
}

func (x *index) setHashed(v Version, b int, h uint64) {
	d := &x.digest.Buckets[b]
	if old, ok := x.entries[b][v.Key]; ok {
		d.Hash ^= old.h
		d.Count--
	}
	x.entries[b][v.Key] = entry{v: v, h: h}
	d.Hash ^= h
	d.Count++
}

// remove forgets a key (a purged tombstone).
func (x *index) remove(k Key) {
	b := k.bucket()
	if old, ok := x.entries[b][k]; ok {
		delete(x.entries[b], k)
		x.digest.Buckets[b].Hash ^= old.h
		x.digest.Buckets[b].Count--
	}
}

func (x *index) get(k Key) (Version, bool) {
	e, ok := x.entries[k.bucket()][k]
	return e.v, ok
}

// Digest returns the digest of everything the store holds.
func (s *Store) Digest() Digest {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.idx.digest
}

// DiffBuckets returns the buckets in which remote differs from this
// store's digest, in order.
func (s *Store) DiffBuckets(remote Digest) []int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []int
	for i, b := range s.idx.digest.Buckets {
		if b != remote.Buckets[i] {
			out = append(out, i)
		}
	}
	return out
}

// BucketVersions returns the version of every record in bucket b, sorted
// by kind and ID. It returns nil for a bucket outside 0…DigestBuckets-1.
func (s *Store) BucketVersions(b int) []Version {
	if b < 0 || b >= DigestBuckets {
		return nil
	}
	s.mu.RLock()
	out := make([]Version, 0, len(s.idx.entries[b]))
	for _, e := range s.idx.entries[b] {
		out = append(out, e.v)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Version) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	return out
}
