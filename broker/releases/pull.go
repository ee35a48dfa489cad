package releases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Pulls: a broker asked for a blob it lacks fetches it from another
// broker that holds it whole. One pull per blob runs at a time; every
// download of the blob waits on it for the bytes past what the store
// holds. A pull that found no source is remembered for failedFor, so a
// crowd of agents asking at once costs the other brokers one round of
// questions, not one each.

// failedFor is how long a failed pull answers for the next ones.
const failedFor = 5 * time.Second

// errNoSource is a blob no other broker holds whole.
var errNoSource = errors.New("no broker of the cluster holds it whole yet")

type pulls struct {
	mu sync.Mutex       // guards m, and r.wg.Add against Close
	m  map[string]*pull // blob name → its pull, running or lately failed
}

// pull is one blob being fetched from other brokers.
type pull struct {
	sha   string
	size  int64
	ready chan struct{} // closed once a source is chosen, or the pull ended
	once  sync.Once     // closes ready

	mu    sync.Mutex // guards all following fields
	have  int64      // bytes of the blob the store holds
	done  bool
	err   error
	ended time.Time
	wake  chan struct{} // closed and replaced at every change
}

// startPull returns the pull of blob sha, started if none runs, once it
// has a source (or the error that it found none).
func (r *Room) startPull(sha string, size int64) (*pull, error) {
	r.pulls.mu.Lock()
	p := r.pulls.m[sha]
	if p != nil && p.failedBefore(r.cfg.Now().Add(-failedFor)) {
		p = nil
	}
	if p == nil {
		if r.ctx.Err() != nil {
			r.pulls.mu.Unlock()
			return nil, errors.New("the broker is shutting down")
		}
		p = &pull{sha: sha, size: size, ready: make(chan struct{}), wake: make(chan struct{})}
		r.pulls.m[sha] = p
		r.wg.Add(1)
		go r.runPull(p)
	}
	r.pulls.mu.Unlock()
	if p.size != size {
		return nil, fmt.Errorf("it is being fetched as %d bytes, not %d", p.size, size)
	}
	t := time.NewTimer(requestDeadline)
	defer t.Stop()
	select {
	case <-p.ready:
	case <-t.C:
		return nil, errors.New("no broker answered whether it holds it")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done && p.err != nil {
		return nil, p.err
	}
	return p, nil
}

// failedBefore reports whether the pull failed before t.
func (p *pull) failedBefore(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done && p.err != nil && p.ended.Before(t)
}

// runPull fetches p's blob and says how it went.
func (r *Room) runPull(p *pull) {
	defer r.wg.Done()
	err := r.pullBlob(p)
	p.finish(err, r.cfg.Now())
	r.pulls.mu.Lock()
	if err == nil && r.pulls.m[p.sha] == p {
		delete(r.pulls.m, p.sha) // the store has it: later gets need no pull
	}
	if len(r.pulls.m) > 1024 { // failed pulls of blobs never asked again
		for sha, q := range r.pulls.m {
			if q.failedBefore(r.cfg.Now().Add(-failedFor)) {
				delete(r.pulls.m, sha)
			}
		}
	}
	r.pulls.mu.Unlock()
	if err != nil {
		r.log.Warn("release blob pull failed", "blob", p.sha, "err", err)
	} else {
		r.log.Info("release blob pulled", "blob", p.sha, "size", p.size)
	}
}

// pullBlob asks the other brokers which hold the blob whole and fetches
// it from the first that answers so, going on to the next if one fails
// or is too slow.
func (r *Room) pullBlob(p *pull) error {
	src := r.askSources(p)
	defer src.stop()
	var errs []error
	for r.ctx.Err() == nil {
		id, ok := src.next(r.ctx)
		if !ok {
			break
		}
		p.once.Do(func() { close(p.ready) })
		err := r.pullFrom(p, id, src)
		if err == nil {
			return nil
		}
		if errors.Is(err, errTooSlow) {
			src.dropSlow(id)
		}
		errs = append(errs, fmt.Errorf("from %s: %w", id, err))
	}
	switch {
	case len(errs) > 0:
		return errors.Join(errs...)
	case r.ctx.Err() != nil:
		return errors.New("the broker is shutting down")
	}
	return errNoSource
}

// ask connects to broker b and makes a has request.
func (r *Room) ask(ctx context.Context, b peer.AddrInfo, req *wire.BlobRequest) (wire.BlobReply, error) {
	if err := r.deps.Host.Connect(ctx, b); err != nil {
		return wire.BlobReply{}, fmt.Errorf("dial: %w", err)
	}
	s, _, rep, err := r.open(ctx, b.ID, req)
	if s != nil {
		s.Close()
	}
	return rep, err
}

// open opens a ProtoRelease stream to id, sends req and reads the reply.
// What follows the reply (a get's bytes) is read from body.
func (r *Room) open(ctx context.Context, id peer.ID, req *wire.BlobRequest) (network.Stream, io.Reader, wire.BlobReply, error) {
	req.Versions = wire.OurVersions()
	var rep wire.BlobReply
	s, err := r.deps.Host.NewStream(ctx, id, wire.ProtoRelease)
	if err != nil {
		return nil, nil, rep, err
	}
	// The other broker may queue a get for a while before it answers.
	// Until it does, ctx bounds the exchange too: a has ends at its
	// timeout, and every one when the room closes.
	s.SetDeadline(time.Now().Add(requestDeadline + r.cfg.QueueWait))
	cut := context.AfterFunc(ctx, func() { s.Reset() })
	rd := wire.NewReader(s)
	err = wire.Write(s, req)
	if err == nil {
		s.CloseWrite()
		err = rd.Read(wire.MaxControl, &rep)
	}
	if !cut() {
		err = errors.Join(err, ctx.Err())
	}
	if err == nil && rep.Error != nil {
		err = rep.Error
	}
	if err != nil {
		s.Reset()
		return nil, nil, rep, err
	}
	return s, io.MultiReader(bytes.NewReader(rd.Buffered()), s), rep, nil
}

// pullFrom fetches the rest of p's blob from broker id, chunk by chunk,
// resuming at what the store holds. It ends with errTooSlow when the
// source is slower than Config.MinPullRate and src knows another.
func (r *Room) pullFrom(p *pull, id peer.ID, src *sources) error {
	off, err := r.resumeAt(p)
	if err != nil || off == p.size {
		return err
	}
	s, rd, _, err := r.open(r.ctx, id, &wire.BlobRequest{Op: wire.BlobGet, SHA256: p.sha, Size: p.size, Offset: off})
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(r.ctx, func() { s.Reset() })
	defer stop()
	body := &countingReader{r: rd}
	w := r.watchRate(p, id, src, body, func() { s.Reset() })
	defer w.stop()
	buf := make([]byte, store.BlobChunk)
	for off < p.size {
		n := min(store.BlobChunk, p.size-off)
		s.SetDeadline(time.Now().Add(r.cfg.Idle))
		if _, err := io.ReadFull(body, buf[:n]); err != nil {
			if w.dropped.Load() {
				err = errTooSlow
			}
			return fmt.Errorf("stopped at %d of %d bytes: %w", off, p.size, err)
		}
		m, err := r.deps.Blobs.WriteBlobChunk(p.sha, p.size, off, buf[:n], r.cfg.Now())
		if err != nil {
			return err
		}
		r.metrics.moved(flowFromBroker, int(n))
		off = m.Have
		p.progress(off)
	}
	return nil
}

// resumeAt returns where p's blob resumes: what the store holds. A
// partial copy of another size (an upload that named the wrong size)
// could never become whole, so it is deleted and the pull starts over.
func (r *Room) resumeAt(p *pull) (int64, error) {
	m, ok := r.deps.Blobs.BlobHave(p.sha)
	if ok && m.Size != p.size {
		r.log.Warn("release blob: deleting a partial copy of the wrong size", "blob", p.sha, "size", m.Size, "want", p.size)
		if err := r.deps.Blobs.DeleteBlob(p.sha); err != nil {
			return 0, err
		}
		m = store.BlobMeta{}
	}
	p.progress(m.Have)
	return m.Have, nil
}

// progress notes that the store holds have bytes, and wakes the waiters.
func (p *pull) progress(have int64) {
	p.mu.Lock()
	p.have = have
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
}

// finish notes how the pull ended, at now, and wakes everyone waiting.
func (p *pull) finish(err error, now time.Time) {
	p.mu.Lock()
	p.done, p.err, p.ended = true, err, now
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
	p.once.Do(func() { close(p.ready) })
}

// await waits, at most d, until the store holds more than off bytes or
// the pull ends. A close of gone (if not nil) ends the wait. A nil error
// means: read the store again.
func (p *pull) await(off int64, d time.Duration, gone <-chan struct{}) error {
	p.mu.Lock()
	switch {
	case p.have > off:
		p.mu.Unlock()
		return nil
	case p.done:
		err := p.err
		p.mu.Unlock()
		if err == nil {
			err = errors.New("the pull ended short of the offset")
		}
		return fmt.Errorf("pulling the blob from another broker: %w", err)
	}
	wake := p.wake
	p.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wake:
		return nil
	case <-gone:
		return errors.New("the download was superseded or reset while it waited for the pull")
	case <-t.C:
		return fmt.Errorf("the pull from another broker brought nothing within %v", d)
	}
}
