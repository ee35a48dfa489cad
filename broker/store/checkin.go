package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// CheckInResult says what a committed check-in did.
type CheckInResult struct {
	// Duplicate is set when the same sequence number was already stored
	// with the same content: the agent retried after a lost acknowledgement.
	Duplicate bool
	// StoredSeq is the machine's newest stored sequence after the call.
	StoredSeq uint64
	StoredAt  time.Time
}

// CheckIn stores a snapshot as the machine's latest and appends its summary
// to the history. It returns after the transaction is committed and fsynced.
// Concurrent calls share transactions (bbolt Batch).
//
// The machine must be enrolled. A sequence number at or below the stored one
// is a duplicate if the content is identical, else ErrSequence (the reply
// carries the stored sequence so the agent can move past it).
func (s *Store) CheckIn(ci *wire.CheckIn, now time.Time) (CheckInResult, error) {
	raw, err := json.Marshal(&ci.Snapshot)
	if err != nil {
		return CheckInResult{}, fmt.Errorf("store: encode snapshot: %w", err)
	}
	sum := sha256.Sum256(raw)
	digest := hex.EncodeToString(sum[:])
	now = now.UTC()

	var res CheckInResult
	var saved *Machine
	err = s.db.Batch(func(tx *bolt.Tx) error {
		res, saved = CheckInResult{}, nil
		m := new(Machine)
		found, err := getJSON(tx.Bucket(bktMachines), []byte(ci.MachineID), m)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("%s: %w", ci.MachineID, ErrUnknownMachine)
		}
		if last := m.LastCheckIn; last != nil && ci.Seq <= last.Seq {
			res.StoredSeq, res.StoredAt = last.Seq, last.At
			if ci.Seq == last.Seq && s.lastDigest(tx, m.ID) == digest {
				res.Duplicate = true
				return nil
			}
			return fmt.Errorf("%w: got %d, stored %d", ErrSequence, ci.Seq, last.Seq)
		}
		applySnapshot(m, ci, now)
		if err := tx.Bucket(bktSnapshots).Put([]byte(m.ID), raw); err != nil {
			return err
		}
		if err := s.appendHistory(tx, m, ci, now, digest); err != nil {
			return err
		}
		m.Rev++
		if err := putJSON(tx.Bucket(bktMachines), []byte(m.ID), m); err != nil {
			return err
		}
		res.StoredSeq, res.StoredAt, saved = ci.Seq, now, m
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrSequence) {
			s.log.Warn("check-in refused", "machine", ci.MachineID, "seq", ci.Seq, "err", err)
		}
		return res, err
	}
	if saved != nil {
		s.remember(saved)
	}
	return res, nil
}

// applySnapshot copies the card-relevant parts of a snapshot into the
// machine record, carrying over when each pending update was first seen.
func applySnapshot(m *Machine, ci *wire.CheckIn, now time.Time) {
	snap := &ci.Snapshot
	firstSeen := make(map[string]time.Time, len(m.PendingUpdates))
	for _, u := range m.PendingUpdates {
		if u.FirstSeen != nil {
			firstSeen[strings.ToLower(u.ID)] = *u.FirstSeen
		}
	}
	pending := make([]wire.PendingUpdate, len(snap.PendingUpdates))
	for i, u := range snap.PendingUpdates {
		t, ok := firstSeen[strings.ToLower(u.ID)]
		if !ok {
			t = now
		}
		u.FirstSeen = &t
		pending[i] = u
	}
	osInfo := snap.OS
	m.OS = &osInfo
	m.Hostname = snap.Hostname
	m.AgentVersion = snap.AgentVersion
	m.PendingUpdates = pending
	m.Runtime = snap.Runtime
	m.Approval = snap.Approval
	m.CollectorErrs = snap.CollectorErrs
	m.LastCheckIn = &CheckInMeta{Seq: ci.Seq, At: now, Reason: ci.Reason,
		BootID: snap.BootID, CollectedAt: snap.CollectedAt.UTC()}
	seen := now
	m.LastSeen = &seen
}

func (s *Store) lastDigest(tx *bolt.Tx, id string) string {
	raw := tx.Bucket(bktSnapshots).Get([]byte(id))
	if raw == nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// appendHistory adds the check-in's summary and drops the oldest beyond the
// history limit.
func (s *Store) appendHistory(tx *bolt.Tx, m *Machine, ci *wire.CheckIn, now time.Time, digest string) error {
	b, err := tx.Bucket(bktHistory).CreateBucketIfNotExists([]byte(m.ID))
	if err != nil {
		return err
	}
	item := wire.HistoryItem{Seq: ci.Seq, At: now, Reason: ci.Reason, BootID: ci.Snapshot.BootID,
		AgentVersion: ci.Snapshot.AgentVersion, OSVersion: ci.Snapshot.OS.Version,
		Packages: len(ci.Snapshot.Packages), PendingUpdates: len(ci.Snapshot.PendingUpdates), Digest: digest}
	if err := putJSON(b, seqKey(ci.Seq), item); err != nil {
		return err
	}
	m.HistoryN++
	c := b.Cursor()
	for k, _ := c.First(); k != nil && m.HistoryN > s.histN; k, _ = c.Next() {
		if err := c.Delete(); err != nil {
			return err
		}
		m.HistoryN--
	}
	return nil
}
