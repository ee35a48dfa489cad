package localdb

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

var (
	keyEnrolled = []byte("enrolment")
	keySeq      = []byte("seq")
	keyLast     = []byte("last_check_in")
)

// ErrNotEnrolled is returned by Enrolment before the agent is enrolled.
var ErrNotEnrolled = errors.New("this agent is not enrolled; run sessiond enroll first")

// Enrolment is what the agent learned when it enrolled.
type Enrolment struct {
	MachineID  string            `json:"machine_id"`
	Name       string            `json:"name"`
	Client     string            `json:"client"`
	Broker     wire.BrokerInfo   `json:"broker"`
	Brokers    []wire.BrokerInfo `json:"brokers,omitempty"` // learned later, for failover
	EnrolledAt time.Time         `json:"enrolled_at"`
	// ReleaseKey is the release public key (minisign, "RW…") updates
	// must be signed with: pinned from the enrolment token, set at the
	// machine (sessiond trust-release-key) or moved on by a release that
	// named its successor. Empty means none: every update is refused.
	ReleaseKey string `json:"release_key,omitempty"`
}

// LastCheckIn is the newest acknowledged check-in.
type LastCheckIn struct {
	Seq    uint64    `json:"seq"`
	BootID string    `json:"boot_id"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// SetEnrolment stores the enrolment.
func (d *DB) SetEnrolment(e Enrolment) error {
	return d.put(keyEnrolled, e)
}

// Enrolment returns the stored enrolment or ErrNotEnrolled.
func (d *DB) Enrolment() (Enrolment, error) {
	var e Enrolment
	ok, err := d.get(keyEnrolled, &e)
	if err == nil && !ok {
		err = ErrNotEnrolled
	}
	return e, err
}

// EditEnrolment changes the stored enrolment with f in one transaction,
// so two writers that change different fields (the broker list, the
// release key) never undo each other. It returns the enrolment as
// stored, or ErrNotEnrolled.
func (d *DB) EditEnrolment(f func(*Enrolment)) (Enrolment, error) {
	var e Enrolment
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bkt)
		raw := b.Get(keyEnrolled)
		if raw == nil {
			return ErrNotEnrolled
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("localdb: decode %s: %w", keyEnrolled, err)
		}
		f(&e)
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(keyEnrolled, raw)
	})
	return e, err
}

// NextSeq advances the check-in sequence and commits it before returning.
func (d *DB) NextSeq() (uint64, error) {
	var seq uint64
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bkt)
		if v := b.Get(keySeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		seq++
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		return b.Put(keySeq, k[:])
	})
	if err != nil {
		return 0, fmt.Errorf("localdb: next seq: %w", err)
	}
	return seq, nil
}

// SkipTo moves the sequence counter to at least seq, after the broker said
// it already stores seq (for example after the state directory was restored
// from a backup).
func (d *DB) SkipTo(seq uint64) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bkt)
		if v := b.Get(keySeq); len(v) == 8 && binary.BigEndian.Uint64(v) >= seq {
			return nil
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		return b.Put(keySeq, k[:])
	})
}

// SetLast records the newest acknowledged check-in.
func (d *DB) SetLast(l LastCheckIn) error { return d.put(keyLast, l) }

// Last returns the newest acknowledged check-in; ok is false if none.
func (d *DB) Last() (l LastCheckIn, ok bool, err error) {
	ok, err = d.get(keyLast, &l)
	return l, ok, err
}
