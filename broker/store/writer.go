package store

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store: closed")

// maxBatch bounds how many writes share one transaction.
const maxBatch = 4096

// The store has one writer goroutine. Every write (enrolment, check-in,
// last-seen, control records, jobs, audit entries, transcripts, imports
// from other brokers) is an op handed to it. It takes every op that is
// waiting, applies them in one bbolt transaction, commits (one fsync pair
// for all of them), updates the in-memory index, and only then answers
// each op. While it commits, new ops queue up and form the
// next batch, so the batch grows with the load instead of waiting on a
// timer: a lone agent pays one commit, a thousand agents share a few.
//
// Because only the writer changes records, the in-memory machine index and
// the digest are exactly what has been committed, and an op reads machine
// records from the index (or from the batch in progress) instead of
// decoding them from the file. The writer also owns the hybrid logical
// clock, so stamping a write needs no lock.

// op is one write. fn applies it to the batch in progress. A refusal (an
// error made with refuse) means fn wrote nothing and the others go on; any
// other error aborts the transaction, whose ops are then retried one at a
// time, so only the op that failed fails.
type op struct {
	fn   func(b *batch) error
	err  error
	done chan struct{}
}

// refusal marks an error as a refused write: nothing was written.
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

// refuse marks err as a refusal.
func refuse(err error) error { return refusal{err} }

// batch is the transaction in progress and the records it changed.
type batch struct {
	tx    *bolt.Tx
	s     *Store
	dirty map[string]*Machine
	gone  map[string]bool  // machines removed from the fleet in this batch
	ctl   map[Key]*Version // new versions of control records; nil: removed
	// revoked are the access ends this batch committed, for OnRevoke.
	revoked []Revoked
	// ring is the fleet's release keys as of the batch, once read
	// (release_trust.go); writing a release or the fleet key drops it.
	ring *keyring
	// refused counts the replicated releases this batch refused
	// (admitRelease).
	refused int
	// policies are the policies this batch wrote, by scope (notePolicy).
	policies map[string]*PolicyRecord
}

// machine returns a copy of a machine record as of the batch in progress.
// Slices inside it are shared: callers replace them, never modify them.
func (b *batch) machine(id string) (*Machine, bool) {
	if b.gone[id] {
		return nil, false
	}
	if m, ok := b.dirty[id]; ok {
		return m, true
	}
	b.s.mu.RLock()
	m, ok := b.s.machines[id]
	b.s.mu.RUnlock()
	if !ok {
		return nil, false
	}
	c := *m
	return &c, true
}

// put writes a machine record in the batch.
func (b *batch) put(m *Machine) error {
	m.Rev++
	if err := putJSON(b.tx.Bucket(bktMachines), []byte(m.ID), m); err != nil {
		return err
	}
	b.dirty[m.ID] = m
	return nil
}

// write hands fn to the writer and waits until it is committed or refused.
func (s *Store) write(fn func(b *batch) error) error {
	o := &op{fn: fn, done: make(chan struct{})}
	select {
	case s.ops <- o:
	case <-s.quit:
		return ErrClosed
	}
	<-o.done
	return o.err
}

// run is the writer goroutine. It exits when quit is closed.
func (s *Store) run() {
	defer close(s.stopped)
	for {
		var ops []*op
		select {
		case o := <-s.ops:
			ops = append(ops, o)
		case <-s.quit:
			return
		}
	drain:
		for len(ops) < maxBatch {
			select {
			case o := <-s.ops:
				ops = append(ops, o)
			default:
				break drain
			}
		}
		s.commit(ops)
	}
}

// commit applies ops in one transaction. If one of them fails (not a
// refusal), the transaction is rolled back and each op is retried alone,
// so one broken write cannot fail the others.
func (s *Store) commit(ops []*op) {
	b, err := s.apply(ops)
	if err != nil && len(ops) > 1 {
		for _, o := range ops {
			s.commit([]*op{o})
		}
		return
	}
	if err != nil {
		ops[0].err = err
	} else {
		s.publish(b)
		if s.onCommit != nil {
			s.onCommit()
		}
		if s.onRevoke != nil {
			for _, r := range b.revoked {
				s.onRevoke(r)
			}
		}
	}
	for _, o := range ops {
		close(o.done)
	}
}

// publish makes a committed batch visible: the machine records in the
// index and every changed version in the digest. The versions are hashed
// before the lock is taken.
func (s *Store) publish(b *batch) {
	type change struct {
		v      Version
		bucket int
		hash   uint64
	}
	changes := make([]change, 0, len(b.dirty)+len(b.ctl))
	var removed []Key
	for _, m := range b.dirty {
		v := machineVersion(m)
		changes = append(changes, change{v, v.Key.bucket(), v.hash()})
	}
	for k, v := range b.ctl {
		if v == nil {
			removed = append(removed, k)
			continue
		}
		changes = append(changes, change{*v, k.bucket(), v.hash()})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, m := range b.dirty {
		s.machines[id] = m
	}
	for id := range b.gone {
		delete(s.machines, id)
		s.idx.remove(Key{KindMachine, id})
	}
	for _, c := range changes {
		s.idx.setHashed(c.v, c.bucket, c.hash)
	}
	for _, k := range removed {
		s.idx.remove(k)
	}
	s.publishPoliciesLocked(b)
}

func (s *Store) apply(ops []*op) (*batch, error) {
	b := &batch{s: s, dirty: map[string]*Machine{}, gone: map[string]bool{}, ctl: map[Key]*Version{}}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b.tx = tx
		for _, o := range ops {
			o.err = o.fn(b)
			var r refusal
			if o.err != nil && !errors.As(o.err, &r) {
				return o.err
			}
			if o.err != nil {
				o.err = r.error
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: commit: %w", err)
	}
	return b, nil
}
