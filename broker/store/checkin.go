package store

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
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

// CheckIn stores a snapshot as the machine's latest and adds its summary
// to the history. It returns after the transaction is committed and
// fsynced. Concurrent calls share transactions (see writer.go).
//
// The machine must be enrolled and the check-in valid. The same sequence
// number as the stored one with identical content is a duplicate (stored
// once, acknowledged again); any other sequence at or below the stored one
// is ErrSequence, and the result carries the stored sequence so the agent
// can move past it.
func (s *Store) CheckIn(ci *wire.CheckIn, now time.Time) (CheckInResult, error) {
	if err := ci.Validate(); err != nil {
		return CheckInResult{}, fmt.Errorf("store: %w", err)
	}
	w, err := s.wholeCheckIn(ci)
	if err != nil {
		return CheckInResult{}, fmt.Errorf("store: %w", err)
	}
	now = now.UTC()

	var res CheckInResult
	err = s.write(func(b *batch) error {
		res = CheckInResult{}
		m, ok := b.machine(ci.MachineID)
		if !ok {
			if r, removed, err := b.removal(ci.MachineID); err != nil || removed {
				return cmp.Or(err, refuse(removedError(r)))
			}
			return refuse(fmt.Errorf("%s: %w", ci.MachineID, ErrUnknownMachine))
		}
		if last := m.LastCheckIn; last != nil && ci.Seq <= last.Seq {
			res.StoredSeq, res.StoredAt = last.Seq, last.At
			if ci.Seq == last.Seq && w.raw != nil && lastDigest(b.tx, m.ID) == w.digest {
				res.Duplicate = true
				return nil
			}
			return refuse(fmt.Errorf("%w: got %d, stored %d", ErrSequence, ci.Seq, last.Seq))
		}
		if err := w.refusal(m); err != nil {
			return refuse(err)
		}
		applySnapshot(m, w.ci, now, w.digest)
		if ci.Update != nil {
			u := *ci.Update
			m.LastUpdate = &u
		}
		if err := b.tx.Bucket(bktSnapshots).Put([]byte(m.ID), w.raw); err != nil {
			return err
		}
		if err := s.appendHistory(b.tx, m, historyItem(w.ci, now, w.digest)); err != nil {
			return err
		}
		res.StoredSeq, res.StoredAt = ci.Seq, now
		return b.put(m)
	})
	switch {
	case err == nil, errors.Is(err, ErrSequence):
	case errors.Is(err, ErrNeedFull):
		s.log.Info("compact check-in refused: the agent is to send it whole", "machine", ci.MachineID, "seq", ci.Seq, "err", err)
	default:
		s.log.Warn("check-in refused", "machine", ci.MachineID, "seq", ci.Seq, "err", err)
	}
	return res, err
}

// applySnapshot copies the card-relevant parts of a snapshot into the
// machine record, carrying over when each pending update was first seen.
// It copies what it keeps, so the record shares no memory with ci.
func applySnapshot(m *Machine, ci *wire.CheckIn, now time.Time, digest string) {
	snap := &ci.Snapshot
	setReadiness(m, snap, &CheckInMeta{Seq: ci.Seq, At: now, Reason: ci.Reason,
		BootID: snap.BootID, CollectedAt: snap.CollectedAt.UTC(), Digest: digest}, firstSeen(m), now)
	if m.LastSeen == nil || now.After(*m.LastSeen) {
		seen := now
		m.LastSeen = &seen
	}
}

// firstSeen maps each pending update of m (by ID in lower case) to when
// it was first seen.
func firstSeen(m *Machine) map[string]time.Time {
	out := make(map[string]time.Time, len(m.PendingUpdates))
	for _, u := range m.PendingUpdates {
		if u.FirstSeen != nil {
			out[strings.ToLower(u.ID)] = *u.FirstSeen
		}
	}
	return out
}

// setReadiness sets the readiness part of a machine record (the latest
// check-in and what is copied out of its snapshot). A pending update
// missing from firstSeen was first seen now.
func setReadiness(m *Machine, snap *wire.Snapshot, meta *CheckInMeta, firstSeen map[string]time.Time, now time.Time) {
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
	m.Approval = cloneApproval(snap.Approval)
	m.CollectorErrs = slices.Clone(snap.CollectorErrs)
	m.LastUncleanEnd = nil
	if e := snap.LastUncleanEnd; e != nil {
		c := *e
		c.At = c.At.UTC()
		m.LastUncleanEnd = &c
	}
	m.LastCheckIn = meta
}

// copyReadiness copies the readiness part of src into dst.
func copyReadiness(dst, src *Machine) {
	dst.Hostname, dst.LastCheckIn, dst.OS, dst.AgentVersion = src.Hostname, src.LastCheckIn, src.OS, src.AgentVersion
	dst.PendingUpdates, dst.Runtime, dst.Approval, dst.CollectorErrs = src.PendingUpdates, src.Runtime, src.Approval, src.CollectorErrs
	dst.LastUncleanEnd = src.LastUncleanEnd
}

func cloneApproval(a wire.Approval) wire.Approval {
	clone := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		c := *t
		return &c
	}
	a.LastApprovedAt, a.ExpiresAt = clone(a.LastApprovedAt), clone(a.ExpiresAt)
	return a
}

func lastDigest(tx *bolt.Tx, id string) string {
	raw := tx.Bucket(bktSnapshots).Get([]byte(id))
	if raw == nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// historyItem summarises a check-in whose snapshot is whole. The first
// check-in after an unclean end says how the run ended.
func historyItem(ci *wire.CheckIn, now time.Time, digest string) wire.HistoryItem {
	it := wire.HistoryItem{Seq: ci.Seq, At: now, Reason: ci.Reason, BootID: ci.Snapshot.BootID,
		AgentVersion: ci.Snapshot.AgentVersion, OSVersion: ci.Snapshot.OS.Version,
		Packages: len(ci.Snapshot.Packages), PendingUpdates: len(ci.Snapshot.PendingUpdates), Digest: digest}
	if e := ci.Snapshot.LastUncleanEnd; ci.Reason == wire.ReasonUnclean && e != nil {
		it.Detail = e.Detail
	}
	return it
}

// historyKey is machine ID, a zero byte, and the slot as 2 bytes.
func historyKey(id string, slot int) []byte {
	k := make([]byte, 0, len(id)+3)
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint16(k, uint16(slot))
}

// appendHistory writes the summary into the machine's ring of history
// slots, overwriting the oldest once the ring is full. A ring in one flat
// bucket costs one page write per check-in, where a per-machine bucket
// with deletes cost three. It keeps m.HistoryHash up to date: the
// overwritten item's hash goes out, the new one's in.
func (s *Store) appendHistory(tx *bolt.Tx, m *Machine, item wire.HistoryItem) error {
	b := tx.Bucket(bktHistory)
	if m.HistorySlots > s.histN {
		items, err := readHistory(b, m.ID)
		if err != nil {
			return err
		}
		if err := s.rewriteHistory(tx, m, items); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(item)
	if err != nil {
		return err
	}
	slot := m.HistoryNext % s.histN
	key := historyKey(m.ID, slot)
	if old := b.Get(key); old != nil && slot < m.HistorySlots {
		m.HistoryHash ^= hash64(old)
	}
	if err := b.Put(key, raw); err != nil {
		return err
	}
	m.HistoryHash ^= hash64(raw)
	m.HistoryNext = (slot + 1) % s.histN
	m.HistorySlots = max(m.HistorySlots, slot+1)
	return nil
}

// rewriteHistory replaces a machine's ring with the newest HistoryLimit of
// items (newest first), in slots 0…n-1, oldest first. It is how a ring
// left larger by a higher history limit shrinks, and how items merged
// from another broker are stored.
func (s *Store) rewriteHistory(tx *bolt.Tx, m *Machine, items []wire.HistoryItem) error {
	b := tx.Bucket(bktHistory)
	for slot := 0; slot < m.HistorySlots; slot++ {
		if err := b.Delete(historyKey(m.ID, slot)); err != nil {
			return err
		}
	}
	keep := items[:min(len(items), s.histN)] // newest first
	m.HistoryHash = 0
	for i := range keep {
		raw, err := json.Marshal(keep[len(keep)-1-i])
		if err != nil {
			return err
		}
		if err := b.Put(historyKey(m.ID, i), raw); err != nil {
			return err
		}
		m.HistoryHash ^= hash64(raw)
	}
	m.HistorySlots, m.HistoryNext = len(keep), len(keep)%s.histN
	return nil
}

// readHistory returns a machine's history items, newest first.
func readHistory(b *bolt.Bucket, id string) ([]wire.HistoryItem, error) {
	prefix := append([]byte(id), 0)
	var out []wire.HistoryItem
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && len(k) == len(prefix)+2 && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
		var it wire.HistoryItem
		if err := json.Unmarshal(v, &it); err != nil {
			return nil, fmt.Errorf("history %x: %w", k, err)
		}
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq > out[j].Seq })
	return out, nil
}
