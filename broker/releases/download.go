package releases

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// sendBuffer is what a download reads from the store per write: a
// quarter chunk, so MaxDownloads downloads hold 8 MiB at the default.
const sendBuffer = 256 << 10

// serveAgent answers an agent's get: the blob of a live release, from
// this broker's store, pulling what the store lacks from another broker
// while it sends what it has. The pull starts before the download takes
// its turn: an agent waiting for the other brokers' answers holds no
// slot, as none does while it waits for the pull's bytes (send).
func (r *Room) serveAgent(s *serve.Stream, c caller, req *wire.BlobRequest) error {
	if err := r.downloadable(req); err != nil {
		return err
	}
	defer r.claimAgent(c.id, s.Stream)()
	gone, stopWatch := watchReset(s.Stream)
	defer stopWatch()
	var p *pull
	if m, ok := r.deps.Blobs.BlobHave(req.SHA256); !ok || !m.Whole() {
		var err error
		if p, err = r.startPull(req.SHA256, req.Size); err != nil {
			return wire.Errorf(wire.CodeUnavailable, "blob %s: %v; retry later", req.SHA256, err)
		}
	}
	pl, err := r.turn(nil, gone)
	if err != nil {
		return err
	}
	defer pl.done()
	if err := r.deps.Blobs.TouchBlob(req.SHA256, r.cfg.Now()); err != nil {
		r.log.Warn("release blob: noting its use", "blob", req.SHA256, "err", err)
	}
	r.send(s, req, flowToAgent, p, pl, gone)
	return nil
}

// serveBroker answers another broker's get: only a blob held whole here,
// so pulls never chain (a broker asks has first and pulls from a broker
// that holds the blob whole).
func (r *Room) serveBroker(s *serve.Stream, c caller, req *wire.BlobRequest) error {
	m, ok := r.deps.Blobs.BlobHave(req.SHA256)
	switch {
	case !ok:
		return wire.Errorf(wire.CodeNotFound, "this broker does not hold blob %s", req.SHA256)
	case m.Size != req.Size:
		return wire.Errorf(wire.CodeConflict, "blob %s is %d bytes here, not %d", req.SHA256, m.Size, req.Size)
	case !m.Whole():
		return wire.Errorf(wire.CodeUnavailable, "this broker holds %d of the %d bytes of blob %s", m.Have, m.Size, req.SHA256)
	}
	pl, err := r.turn(r.brokerSlots(c.id), nil)
	if err != nil {
		return err
	}
	defer pl.done()
	r.send(s, req, flowToBroker, nil, pl, nil)
	return nil
}

// claimAgent makes s the agent's one download: an older one still
// running (left behind by a reconnect, most likely) is cut off. The
// returned func releases the claim.
func (r *Room) claimAgent(id peer.ID, s network.Stream) func() {
	r.mu.Lock()
	if old := r.agents[id]; old != nil {
		old.Reset()
	}
	r.agents[id] = s
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		if r.agents[id] == s {
			delete(r.agents, id)
		}
		r.mu.Unlock()
	}
}

// brokerSlots returns the download slots of broker id.
func (r *Room) brokerSlots(id peer.ID) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	sem := r.perBroker[id]
	if sem == nil { // id is a member of the cluster: few, and known
		sem = make(chan struct{}, r.cfg.MaxPerBroker)
		r.perBroker[id] = sem
	}
	return sem
}

// watchReset returns a channel closed when s is reset while the
// download waits its turn or a pull's bytes: by the agent, or by
// claimAgent when a newer download of the same agent supersedes it. A
// waiter that would send to nobody gives its place up at once instead of
// at Config.QueueWait or Config.Idle. The returned func stops the watch;
// call it before anything else reads s.
func watchReset(s network.Stream) (<-chan struct{}, func()) {
	gone, finished := make(chan struct{}), make(chan struct{})
	var stopping atomic.Bool
	s.SetReadDeadline(time.Time{}) // nothing else reads until stop
	go func() {
		defer close(finished)
		var b [1]byte
		// An agent sends nothing after its request: EOF (it closed its
		// side) is no reset, any other error is, unless stop caused it.
		if _, err := s.Read(b[:]); err != nil && err != io.EOF && !stopping.Load() {
			close(gone)
		}
	}()
	return gone, func() {
		stopping.Store(true)
		s.SetReadDeadline(time.Now())
		<-finished
	}
}

// place is a download's turn: one of the broker's slots, and one of its
// caller's own (own) if the caller has a bound of its own.
type place struct {
	r      *Room
	own    chan struct{} // nil if none
	global bool          // holds one of r.slots; false while paused
}

// turn waits, within Config.QueueWait, for a slot of own (if not nil)
// and one of the broker's. A close of gone (if not nil) ends the wait.
// The place's done gives the slots back.
func (r *Room) turn(own chan struct{}, gone <-chan struct{}) (*place, error) {
	t := time.NewTimer(r.cfg.QueueWait)
	defer t.Stop()
	pl := &place{r: r}
	if own != nil {
		if err := r.take(own, gone, t.C); err != nil {
			return nil, err
		}
		pl.own = own
	}
	if err := r.take(r.slots, gone, t.C); err != nil {
		pl.done()
		return nil, err
	}
	pl.global = true
	r.metrics.active.Inc()
	return pl, nil
}

// take waits for a slot of sem until gone is closed or expired fires.
func (r *Room) take(sem chan struct{}, gone <-chan struct{}, expired <-chan time.Time) error {
	r.metrics.waiting.Inc()
	defer r.metrics.waiting.Dec()
	select {
	case sem <- struct{}{}:
		return nil
	case <-gone:
		return wire.Errorf(wire.CodeUnavailable, "the download was superseded or reset while it waited its turn")
	case <-expired:
		return wire.Errorf(wire.CodeUnavailable, "this broker serves %d release downloads at once and none ended within %v: retry later",
			cap(sem), r.cfg.QueueWait)
	}
}

// pause gives the broker's slot back while the download waits for a
// pull, keeping the caller's own (an agent's is its claim, claimAgent).
//
// Why give it back rather than count waiters apart: a slot bounds what
// a download costs while it moves bytes (its send buffer, the disk's
// reads, the link), and one waiting on a pull moves none, so 32 agents
// waiting for one slow pull would stall every other download for
// nothing. What a paused download still holds is bounded without the
// slot: it is an enrolled machine's one download (claimAgent supersedes
// an older one), its goroutine is its stream's handler, its buffer went
// back with the slot, and it waits within Config.Idle for the pull and
// a slot together before it is cut off (send).
func (pl *place) pause() {
	if pl.global {
		pl.global = false
		<-pl.r.slots
		pl.r.metrics.active.Dec()
	}
}

// resume takes one of the broker's slots again, within d.
func (pl *place) resume(gone <-chan struct{}, d time.Duration) error {
	if pl.global {
		return nil
	}
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	if err := pl.r.take(pl.r.slots, gone, t.C); err != nil {
		return err
	}
	pl.global = true
	pl.r.metrics.active.Inc()
	return nil
}

// done gives the slots back.
func (pl *place) done() {
	pl.pause()
	if pl.own != nil {
		<-pl.own
		pl.own = nil
	}
}

// sendBuffers are the downloads' buffers, one held per slot in use.
var sendBuffers = sync.Pool{New: func() any { b := make([]byte, sendBuffer); return &b }}

// send writes the reply and the blob's bytes from req.Offset to its end,
// each write within Config.Idle (a write deadline: the read side is
// watchReset's). When the store holds less (p is the pull fetching the
// rest), it gives its slot and buffer back (pl.pause) and waits for the
// pull, then takes a slot again, both within Config.Idle, as a chunk
// must move. A close of gone (if not nil) ends the wait. A failure once
// bytes are sent resets the stream: the peer resumes later, at what it
// got.
func (r *Room) send(s *serve.Stream, req *wire.BlobRequest, flow string, p *pull, pl *place, gone <-chan struct{}) {
	m, _ := r.deps.Blobs.BlobHave(req.SHA256)
	s.SetWriteDeadline(time.Now().Add(r.cfg.Idle))
	if err := wire.Write(s, &wire.BlobReply{Have: m.Have, Versions: wire.OurVersions()}); err != nil {
		s.Reset()
		return
	}
	bp := sendBuffers.Get().(*[]byte)
	defer func() {
		if bp != nil {
			sendBuffers.Put(bp)
		}
	}()
	off := req.Offset
	for off < req.Size {
		n, err := r.deps.Blobs.ReadBlobAt(req.SHA256, *bp, off)
		if n > 0 {
			s.SetWriteDeadline(time.Now().Add(r.cfg.Idle))
			if _, err := s.Write((*bp)[:n]); err != nil {
				r.cut(s, req, off, err)
				return
			}
			r.metrics.moved(flow, n)
			off += int64(n)
			continue
		}
		if p == nil || (err != io.EOF && !errors.Is(err, store.ErrNotFound)) {
			r.cut(s, req, off, errors.Join(errors.New("the store holds no more of it"), err))
			return
		}
		until := time.Now().Add(r.cfg.Idle)
		sendBuffers.Put(bp)
		bp = nil
		pl.pause()
		err = p.await(off, r.cfg.Idle, gone)
		if err == nil {
			err = pl.resume(gone, time.Until(until))
		}
		if err != nil {
			r.cut(s, req, off, err)
			return
		}
		bp = sendBuffers.Get().(*[]byte)
	}
	s.CloseWrite()
}

// cut ends a download that failed after its reply was sent.
func (r *Room) cut(s *serve.Stream, req *wire.BlobRequest, off int64, err error) {
	s.Reset()
	r.log.Info("release blob download cut off", "peer", s.Remote.String(), "blob", req.SHA256, "at", off, "size", req.Size, "err", err)
}
