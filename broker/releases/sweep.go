package releases

import (
	"sync"
	"time"
)

// sweeper runs one sweep at a time, and notes when the last ran.
type sweeper struct {
	mu   sync.Mutex // held while a sweep runs
	last time.Time  // guarded by mu
}

// Sweep deletes the blobs past their age: those no live release names,
// unused for Config.OrphanAge, except those of releases withdrawn less
// than Config.WithdrawnAge ago. It returns the names deleted. Run calls
// it every Config.SweepEvery, and each upload when that long has passed
// since the last, so uploads never published are collected even on a
// broker whose loop is not running.
func (r *Room) Sweep() []string {
	r.sweeper.mu.Lock()
	defer r.sweeper.mu.Unlock()
	return r.sweepLocked()
}

// maybeSweep sweeps if Config.SweepEvery has passed since the last
// sweep and no sweep runs now.
func (r *Room) maybeSweep() {
	if !r.sweeper.mu.TryLock() {
		return
	}
	defer r.sweeper.mu.Unlock()
	if r.cfg.Now().Sub(r.sweeper.last) >= r.cfg.SweepEvery {
		r.sweepLocked()
	}
}

func (r *Room) sweepLocked() []string {
	now := r.cfg.Now()
	r.sweeper.last = now
	named, unparsed, opaque, err := r.catalog.snapshot()
	if err != nil {
		r.log.Warn("release blob sweep: reading the releases", "err", err)
		return nil
	}
	if len(unparsed) > 0 {
		r.log.Warn("release blob sweep: keeping the binaries of releases whose manifests this broker cannot parse",
			"releases", unparsed)
	}
	if len(opaque) > 0 {
		r.log.Warn("release blob sweep: skipped: releases name binaries this broker cannot read", "releases", opaque)
		return nil
	}
	keep := func(sha string) bool {
		n, ok := named[sha]
		return ok && (n.live != "" || n.unparsed != "" || now.Sub(n.lastWithdrawal) < r.cfg.WithdrawnAge)
	}
	gone, err := r.deps.Blobs.SweepBlobs(now.Add(-r.cfg.OrphanAge), keep)
	if err != nil {
		r.log.Warn("release blob sweep", "err", err)
	}
	if len(gone) > 0 {
		r.log.Info("release blobs swept", "blobs", gone)
	}
	return gone
}
