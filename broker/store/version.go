package store

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"time"
)

// Kind names a kind of replicated record.
type Kind string

// The kinds of replicated records.
const (
	KindMachine    Kind = "machine"    // ID: the machine's peer ID
	KindClient     Kind = "client"     // ID: the client name
	KindToken      Kind = "token"      // ID: sha256 of the enrolment token's secret (hex)
	KindTechnician Kind = "technician" // ID: the technician name
	KindAdmin      Kind = "admin"      // ID: always AdminName; the admin credential hash
	KindJob        Kind = "job"        // ID: the job ID (32 hex digits)
	KindRemoval    Kind = "removal"    // ID: a removed machine's peer ID
	KindRelease    Kind = "release"    // ID: the release version
	KindReleaseKey Kind = "releasekey" // ID: always FleetKeyName; the fleet's release public key
	KindRollout    Kind = "rollout"    // ID: the rollout ID (12 hex digits)
	KindPolicy     Kind = "policy"     // ID: the scope, "client:NAME" or "machine:PEERID"
)

// Key names one replicated record.
type Key struct {
	Kind Kind   `json:"kind"`
	ID   string `json:"id"`
}

func (k Key) String() string { return string(k.Kind) + " " + k.ID }

// bucket is the digest bucket of k: the first byte of sha256(kind, 0, id).
// It is the same on every broker.
func (k Key) bucket() int {
	h := sha256.New()
	h.Write([]byte(k.Kind))
	h.Write([]byte{0})
	h.Write([]byte(k.ID))
	var sum [sha256.Size]byte
	return int(h.Sum(sum[:0])[0])
}

// Version summarises one record: enough to tell, without the record,
// whether a broker's copy is newer than another's (see Store.Want).
//
// For machines, Seq and At are the latest check-in's sequence number and
// commit time, Seen is last_seen, and Sum hashes the parts that merge
// without an order: the enrolment, the snapshot digest, the history (and
// the host name before the first check-in). For control records, Clock is
// the clock of the last write, Deleted marks a tombstone, and Sum hashes
// the parts that only grow (token use counters; technician keys and the
// one-time login flag) together with the incarnation they belong to.
type Version struct {
	Key
	Clock   Clock     `json:"clock,omitzero"`
	Deleted bool      `json:"deleted,omitempty"`
	Seq     uint64    `json:"seq,omitempty"`
	At      time.Time `json:"at,omitzero"`
	Seen    time.Time `json:"seen,omitzero"`
	Sum     uint64    `json:"sum,omitempty"`
}

// hash is the version's contribution to its digest bucket.
func (v *Version) hash() uint64 {
	var x hasher
	x.str(string(v.Kind))
	x.str(v.ID)
	x.clock(v.Clock)
	x.bool(v.Deleted)
	x.u64(v.Seq)
	x.time(v.At)
	x.time(v.Seen)
	x.u64(v.Sum)
	return x.sum()
}

// newer reports whether merging a record with version remote into the
// local one (which exists when known) could change the local one, that
// is, whether the local broker wants the remote record. Records that are
// older in every ordered part are not wanted: the remote broker fetches
// ours instead, after which the parts that merge as sets are compared at
// equal order and fetched if they differ.
func newer(local Version, known bool, remote Version) bool {
	if !known {
		return true
	}
	if remote.Kind == KindMachine {
		switch {
		case remote.Seen.After(local.Seen):
			return true
		case remote.Seq != local.Seq:
			return remote.Seq > local.Seq
		case !remote.At.Equal(local.At):
			return remote.At.Before(local.At) // the first commit of a check-in wins
		default:
			return remote.Sum != local.Sum
		}
	}
	if remote.Kind == KindReleaseKey && remote.Sum != local.Sum {
		// Any other copy of the fleet key: the import decides by descent,
		// not by stamp, so a copy of the old key stamped ahead cannot keep
		// a broker from asking for the key it rotated to.
		return true
	}
	if c := remote.Clock.Compare(local.Clock); c != 0 {
		return c > 0
	}
	return remote.Sum != local.Sum
}

// machineVersion is the version of a machine record.
func machineVersion(m *Machine) Version {
	v := Version{Key: Key{KindMachine, m.ID}}
	var x hasher
	x.time(m.EnrolledAt)
	x.str(m.Client)
	x.str(m.Name)
	if c := m.LastCheckIn; c != nil {
		v.Seq, v.At = c.Seq, c.At
		x.str(c.Digest)
	} else {
		x.str(m.Hostname)
	}
	x.u64(m.HistoryHash)
	v.Sum = x.sum()
	if m.LastSeen != nil {
		v.Seen = *m.LastSeen
	}
	return v
}

// hasher builds a 64-bit hash of a sequence of fields. It is sha256
// truncated, so every broker computes the same value.
type hasher struct{ h hash.Hash }

func (x *hasher) write(b []byte) {
	if x.h == nil {
		x.h = sha256.New()
	}
	x.h.Write(b)
}

func (x *hasher) u64(v uint64) { x.write(binary.BigEndian.AppendUint64(nil, v)) }

func (x *hasher) str(s string) {
	x.u64(uint64(len(s)))
	x.write([]byte(s))
}

func (x *hasher) bool(b bool) {
	if b {
		x.u64(1)
	} else {
		x.u64(0)
	}
}

func (x *hasher) time(t time.Time) {
	if t.IsZero() {
		x.u64(0)
		return
	}
	x.u64(uint64(t.Unix()))
	x.u64(uint64(t.Nanosecond()))
}

func (x *hasher) clock(c Clock) {
	x.u64(uint64(c.Wall))
	x.u64(uint64(c.Counter))
	x.str(c.Origin)
}

func (x *hasher) sum() uint64 {
	if x.h == nil {
		x.h = sha256.New()
	}
	var b [sha256.Size]byte
	return binary.BigEndian.Uint64(x.h.Sum(b[:0]))
}

// hash64 is sha256(b) truncated to 64 bits.
func hash64(b []byte) uint64 {
	sum := sha256.Sum256(b)
	return binary.BigEndian.Uint64(sum[:8])
}
