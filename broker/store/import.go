package store

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// Import applies records from another broker, each where it is newer than
// what is stored by the rules in doc.go, in one transaction: it returns
// after the commit. The whole batch is validated first; one malformed
// record refuses the batch (an error wrapping ErrMalformed) and nothing is
// stored. A release whose signature does not verify with the fleet key it
// names is left out alone, and counted (ImportResult.Refused;
// admitRelease). Records stamped beyond
// Config.MaxClockSkew ahead, and releases signed by a key this broker
// does not know yet, are deferred (see ImportResult). Nothing stored is
// ever lowered: an older record changes nothing.
//
// The fleet key goes first, so that the releases it signed verify in the
// same batch, then the releases that name a next key; but a key other
// than the stored one goes last, as a rotation may lead to it through the
// batch's releases.
func (s *Store) Import(recs []Record) (ImportResult, error) {
	var res ImportResult
	if len(recs) > MaxRecords {
		return res, fmt.Errorf("store: import: %w", malformed("%d records, limit %d", len(recs), MaxRecords))
	}
	snaps, errs := s.checkAll(recs)
	take := make([]bool, len(recs))
	limit := s.now().Add(s.skew)
	for i := range recs {
		r := &recs[i]
		if err := errs[i]; err != nil {
			s.log.Warn("import refused", "record", i, "key", r.Key.String(), "err", err)
			return ImportResult{}, fmt.Errorf("store: import: record %d: %w", i, err)
		}
		if future(r, limit) {
			s.log.Warn("import deferred: stamped in the future", "key", r.Key.String())
			res.Deferred = append(res.Deferred, r.Key)
			continue
		}
		take[i] = true
	}
	// Releases that name a next key go before the other releases, oldest
	// version first: a key signs no version after the release that named
	// its successor, and the order of a batch must not let one through.
	var rotating []int
	for i := range recs {
		if take[i] && recs[i].Kind == KindRelease && namesNextKey(recs[i].Release) {
			rotating = append(rotating, i)
		}
	}
	slices.SortStableFunc(rotating, func(a, b int) int {
		return release.CompareVersions(recs[a].Release.Version, recs[b].Release.Version)
	})
	var unsigned []Key // releases by a key not known yet
	err := s.write(func(b *batch) error {
		res.Applied, res.Unchanged, unsigned, b.refused = 0, 0, nil, 0
		cutoff := s.tombCutoff()
		step := func(i int) error {
			changed, later, err := b.importRecord(&recs[i], snaps[i], cutoff)
			switch {
			case err != nil:
				return fmt.Errorf("%s: %w", recs[i].Key, err)
			case later:
				unsigned = append(unsigned, recs[i].Key)
			}
			if changed {
				res.Applied++
			} else {
				res.Unchanged++
			}
			return nil
		}
		var rotations []int // fleet keys other than the stored one
		for i := range recs {
			if !take[i] || recs[i].Kind != KindReleaseKey {
				continue
			}
			local, found, err := b.releaseKey()
			if err != nil {
				return err
			}
			if found && local.exists() && !sameKey(local.PublicKey, recs[i].ReleaseKey.PublicKey) {
				rotations = append(rotations, i)
			} else if err := step(i); err != nil {
				return err
			}
		}
		for _, i := range rotating {
			if err := step(i); err != nil {
				return err
			}
		}
		for i := range recs {
			if take[i] && recs[i].Kind != KindReleaseKey && !slices.Contains(rotating, i) {
				if err := step(i); err != nil {
					return err
				}
			}
		}
		for _, i := range rotations {
			if err := step(i); err != nil {
				return err
			}
		}
		res.Refused = b.refused
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			s.log.Warn("import refused", "err", err)
		}
		return ImportResult{}, fmt.Errorf("store: import: %w", err)
	}
	if len(unsigned) > 0 {
		s.log.Info("import deferred: releases signed by a release key this broker does not know yet",
			"releases", len(unsigned), "first", unsigned[0].String())
		res.Deferred = append(res.Deferred, unsigned...)
	}
	return res, nil
}

// checkAll validates records on as many goroutines as there are CPUs:
// decoding and re-encoding snapshots is most of an import's work, and
// each record is checked on its own.
func (s *Store) checkAll(recs []Record) ([]*wire.Snapshot, []error) {
	snaps, errs := make([]*wire.Snapshot, len(recs)), make([]error, len(recs))
	workers := min(runtime.GOMAXPROCS(0), (len(recs)+31)/32)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(recs); i = int(next.Add(1) - 1) {
				r := &recs[i]
				snaps[i], errs[i] = r.check()
				if errs[i] == nil && r.Machine != nil && len(r.Machine.Snapshot) > s.maxSnap {
					errs[i] = malformed("%s: snapshot is %d bytes, limit %d", r.Key, len(r.Machine.Snapshot), s.maxSnap)
				}
			}
		})
	}
	wg.Wait()
	return snaps, errs
}

// future reports whether a record carries a time after limit: a clock, a
// check-in time or last_seen.
func future(r *Record, limit time.Time) bool {
	if m := r.Machine; m != nil {
		return m.CheckIn != nil && m.CheckIn.At.After(limit) || m.LastSeen != nil && m.LastSeen.After(limit)
	}
	return stampOf(payload(r)).Clock.Time().After(limit)
}

// payload returns a control record's payload as a pointer.
func payload(r *Record) any {
	switch {
	case r.Client != nil:
		return r.Client
	case r.Token != nil:
		return r.Token
	case r.Technician != nil:
		return r.Technician
	case r.Job != nil:
		return r.Job
	case r.Removal != nil:
		return r.Removal
	case r.Release != nil:
		return r.Release
	case r.ReleaseKey != nil:
		return r.ReleaseKey
	case r.Rollout != nil:
		return r.Rollout
	case r.Policy != nil:
		return r.Policy
	}
	return r.Admin
}

// tombCutoff is the clock time before which tombstones have expired.
func (s *Store) tombCutoff() time.Time { return s.now().Add(-s.tombTTL) }

// importRecord imports one record. deferred reports a release left
// unstored until this broker knows the key that signed it.
func (b *batch) importRecord(r *Record, snap *wire.Snapshot, cutoff time.Time) (changed, deferred bool, err error) {
	switch r.Kind {
	case KindMachine:
		changed, err = b.importMachine(r.ID, r.Machine, snap)
		return changed, false, err
	case KindRelease: // only a release a fleet key signed is stored
		ok, later, err := b.admitRelease(r.Release)
		if !ok || err != nil {
			return false, later, err
		}
	}
	changed, err = b.importControl(r.Key, payload(r), cutoff)
	return changed, false, err
}

// importControl merges a control record into the stored one.
func (b *batch) importControl(k Key, remote any, cutoff time.Time) (bool, error) {
	st := stampOf(remote)
	b.s.clock.observe(st.Born)
	b.s.clock.observe(st.Clock)
	local, found, err := getControl(b.tx, k)
	if err != nil {
		return false, err
	}
	out := remote
	if found {
		out = mergeControl(local, remote)
	}
	if k.Kind == KindReleaseKey { // only a rotation the fleet key signed moves it
		rec, err := b.admitReleaseKey(local.(*ReleaseKeyRecord), found, out.(*ReleaseKeyRecord), remote.(*ReleaseKeyRecord))
		if rec == nil || err != nil {
			return false, err
		}
		out = rec
	}
	if found && equalJSON(out, local) {
		return false, nil
	}
	switch {
	case k.Kind == KindPolicy && stampOf(out).exists():
		if gone, err := b.scopeGone(k.ID); err != nil || gone {
			// Stale: the removal or the deletion stored here wins.
			b.s.log.Debug("import: policy of a removed machine or a deleted client left out", "scope", k.ID)
			return false, err
		}
	case k.Kind == KindClient && !stampOf(out).exists():
		// The client is deleted here, and its policy with it, as on
		// the broker that deleted it (RemoveClient).
		if _, err := b.dropPolicy(ClientScope(k.ID)); err != nil {
			return false, err
		}
	}
	var oldTech *TechnicianRecord
	if found && k.Kind == KindTechnician {
		oldTech = local.(*TechnicianRecord)
	}
	if st := stampOf(out); st.Deleted && st.Clock.Time().Before(cutoff) {
		// An expired tombstone: forget the record rather than store it.
		if !found {
			return false, nil
		}
		if oldTech != nil {
			if err := b.reindexTechnician(oldTech, nil); err != nil {
				return false, err
			}
		}
		return true, b.deleteControl(k)
	}
	switch k.Kind {
	case KindTechnician:
		if err := b.reindexTechnician(oldTech, out.(*TechnicianRecord)); err != nil {
			return false, err
		}
		b.noteTechnicianChange(oldTech, out.(*TechnicianRecord))
	case KindRemoval:
		if !found {
			if err := b.dropMachine(out.(*RemovalRecord)); err != nil {
				return false, err
			}
		}
	}
	return true, b.putControl(k, out)
}
