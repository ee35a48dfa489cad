package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// A quiet check-in on a metered connection may be compact: its snapshot
// leaves the package list out (most of its bytes) and carries the hash
// of the list the agent last sent whole (wire.Snapshot.PackagesSHA256).
// The store fills the list from the stored snapshot before it commits, so
// the stored snapshot is always whole and readiness, the history's
// package counts and the digests are what a full check-in would have
// made. When the stored list hashes differently, or nothing is stored,
// the check-in is refused with ErrNeedFull and nothing changes: the agent
// sends it again whole.

// wholeCheckIn is a check-in ready for the writer: its snapshot whole,
// encoded and hashed outside the writer, which every check-in shares.
type wholeCheckIn struct {
	ci     *wire.CheckIn // the caller's, or a copy with the packages filled in
	raw    []byte        // the snapshot to store
	digest string        // sha256 of raw, hex
	// basis is the stored check-in whose package list filled a compact
	// snapshot; nil for a full one. The writer stores the filled snapshot
	// only while it is still the latest.
	basis *CheckInMeta
	// needFull, if set, is why a compact snapshot could not be filled.
	// It is the check-in's answer once its sequence has been checked, so
	// an agent out of order hears that first.
	needFull error
}

// wholeCheckIn prepares ci for the writer.
func (s *Store) wholeCheckIn(ci *wire.CheckIn) (*wholeCheckIn, error) {
	w := &wholeCheckIn{ci: ci}
	if ci.Snapshot.PackagesSHA256 != "" {
		full, basis, err := s.fillPackages(ci)
		if errors.Is(err, ErrNeedFull) {
			w.needFull = fmt.Errorf("%s: %w", ci.MachineID, err)
			return w, nil
		}
		if err != nil {
			return nil, err
		}
		w.ci, w.basis = full, basis
	}
	raw, err := json.Marshal(&w.ci.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	sum := sha256.Sum256(raw)
	w.raw, w.digest = raw, hex.EncodeToString(sum[:])
	return w, nil
}

// refusal is why the writer must refuse the check-in on machine record
// m (after its sequence has been checked); nil to store it.
func (w *wholeCheckIn) refusal(m *Machine) error {
	if w.needFull != nil {
		return w.needFull
	}
	if b, l := w.basis, m.LastCheckIn; b != nil && (l == nil || l.Seq != b.Seq || l.Digest != b.Digest || !l.At.Equal(b.At)) {
		return fmt.Errorf("%s: %w (another check-in was stored meanwhile)", m.ID, ErrNeedFull)
	}
	return nil
}

// fillPackages returns a copy of the compact check-in ci with the stored
// snapshot's package list, and the stored check-in it came from. When
// the list cannot be filled the error wraps ErrNeedFull; any other error
// is the store's own failure.
func (s *Store) fillPackages(ci *wire.CheckIn) (*wire.CheckIn, *CheckInMeta, error) {
	// The record is read before the snapshot: the writer commits a
	// snapshot before it updates the records in memory, so a snapshot
	// newer than the record read here can be seen (and the writer's
	// basis check refuses it), but never an older one.
	s.mu.RLock()
	var basis *CheckInMeta
	if m, ok := s.machines[ci.MachineID]; ok && m.LastCheckIn != nil {
		c := *m.LastCheckIn
		basis = &c
	}
	s.mu.RUnlock()
	if basis == nil {
		return nil, nil, fmt.Errorf("%w: no snapshot is stored", ErrNeedFull)
	}
	var stored struct {
		Packages []wire.Package `json:"packages"`
	}
	found, bad := false, error(nil)
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bktSnapshots).Get([]byte(ci.MachineID))
		if found = raw != nil; found {
			bad = json.Unmarshal(raw, &stored)
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("read stored snapshot: %w", err)
	case !found:
		return nil, nil, fmt.Errorf("%w: no snapshot is stored", ErrNeedFull)
	case bad != nil:
		return nil, nil, fmt.Errorf("%w: the stored snapshot does not decode: %v", ErrNeedFull, bad)
	}
	if sum := wire.PackagesSHA256(stored.Packages); sum != ci.Snapshot.PackagesSHA256 {
		return nil, nil, fmt.Errorf("%w: its package list hashes to %.12s…, the stored list (%d packages) to %.12s…",
			ErrNeedFull, ci.Snapshot.PackagesSHA256, len(stored.Packages), sum)
	}
	full := *ci
	full.Snapshot.Packages, full.Snapshot.PackagesSHA256 = stored.Packages, ""
	return &full, basis, nil
}
