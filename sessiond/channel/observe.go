package channel

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
)

// backlog is how much recent output a joining observer gets first, so it
// sees the screen it joins rather than a blank one.
const backlog = 16 << 10

// shared is a terminal other technicians may watch: the technician who
// opened it allows observers; they get its output and nothing they type
// reaches it.
type shared struct {
	// Immutable after share.
	session string
	allow   bool
	done    chan struct{} // closed when the terminal ends

	mu        sync.Mutex         // mu guards all following fields
	observers map[*observer]bool // watchers now; one that falls behind is dropped
	recent    []byte             // the last backlog bytes of output
}

// observer is one watcher: output reaches it through a bounded queue, so a
// watcher that stops reading loses its place instead of stalling the
// terminal it watches.
type observer struct {
	q       chan []byte
	dropped chan struct{} // closed when the queue overflowed
}

// share registers a terminal; the returned func unregisters it.
func (s *Server) share(session string, allow bool) (*shared, func()) {
	t := &shared{session: session, allow: allow, observers: map[*observer]bool{}, done: make(chan struct{})}
	s.termsMu.Lock()
	if s.terms == nil {
		s.terms = map[string]*shared{}
	}
	s.terms[session] = t
	s.termsMu.Unlock()
	if allow && s.cfg.OnShare != nil {
		s.cfg.OnShare()
	}
	return t, func() {
		s.termsMu.Lock()
		if s.terms[session] == t {
			delete(s.terms, session)
		}
		s.termsMu.Unlock()
		close(t.done)
		if allow && s.cfg.OnShare != nil {
			s.cfg.OnShare()
		}
	}
}

// Shared reports whether session has a terminal open that allows
// observers.
func (s *Server) Shared(session string) bool {
	s.termsMu.Lock()
	defer s.termsMu.Unlock()
	t := s.terms[session]
	return t != nil && t.allow
}

// output passes a chunk of the terminal's output to every observer; one
// that cannot keep up is dropped rather than slowing the terminal.
func (t *shared) output(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recent = append(t.recent, p...)
	if len(t.recent) > backlog {
		t.recent = append([]byte(nil), t.recent[len(t.recent)-backlog:]...)
	}
	if len(t.observers) == 0 {
		return
	}
	chunk := append([]byte(nil), p...)
	for o := range t.observers {
		select {
		case o.q <- chunk:
		default:
			delete(t.observers, o)
			close(o.dropped)
		}
	}
}

// observe joins the terminal of session req.Observe as an observer.
func (s *Server) observe(ctx context.Context, ch *mesh.Channel, req wire.TerminalRequest) {
	log := s.log.With("session", ch.Session.Session, "technician", ch.Session.Technician, "observes", req.Observe)
	t := s.sharedTerminal(ch.Stream, req.Observe, log)
	if t == nil {
		return
	}
	w := &lockedWriter{w: ch.Stream}
	o, recent := t.join()
	log.Info("observer joined")
	defer func() {
		t.leave(o)
		log.Info("observer left")
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.frame(wire.FrameNotice, []byte("observing session "+req.Observe+": read-only; what you type is not delivered"))
	if len(recent) > 0 {
		w.frame(wire.FrameOutput, recent)
	}
	go o.forward(ctx, cancel, w)
	go func() {
		defer cancel()
		refuseObserverInput(ch.Stream, w)
	}()
	select {
	case <-ctx.Done():
	case <-t.done:
		o.drain()
		w.exit(0)
	}
}

// sharedTerminal finds the terminal of session that an observer asks to
// watch. When there is none, or its technician does not allow observers,
// it refuses the channel and returns nil.
func (s *Server) sharedTerminal(w io.Writer, session string, log *slog.Logger) *shared {
	s.termsMu.Lock()
	t := s.terms[session]
	s.termsMu.Unlock()
	switch {
	case t == nil:
		refuse(w, wire.CodeNotFound, "no terminal is open in session "+session)
		return nil
	case !t.allow:
		log.Info("refused an observer: not allowed by the terminal's technician")
		refuse(w, wire.CodeForbidden, "the technician of session "+session+" does not allow observers")
		return nil
	}
	return t
}

// join adds an observer and returns it with the recent output it sees
// first.
func (t *shared) join() (*observer, []byte) {
	o := &observer{q: make(chan []byte, 256), dropped: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observers[o] = true
	return o, append([]byte(nil), t.recent...)
}

// leave removes an observer (one dropped for falling behind is gone
// already).
func (t *shared) leave(o *observer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.observers, o)
}

// forward sends the observer's queue to its stream until ctx is done. A
// stream that fails, or a queue that overflowed, ends the observation
// (cancel).
func (o *observer) forward(ctx context.Context, cancel context.CancelFunc, w *lockedWriter) {
	for {
		select {
		case p := <-o.q:
			if w.frame(wire.FrameOutput, p) != nil {
				cancel()
				return
			}
		case <-o.dropped:
			w.frame(wire.FrameNotice, []byte("observation ended: this connection fell too far behind"))
			cancel()
			return
		case <-ctx.Done():
			return
		}
	}
}

// drain gives the terminal's last output up to a second to reach the
// observer before the end.
func (o *observer) drain() {
	for i := 0; i < 100 && len(o.q) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// refuseObserverInput reads an observer's frames until its stream ends.
// Nothing it types is delivered; it gets a notice the first time and every
// 50th after.
func refuseObserverInput(r io.Reader, w *lockedWriter) {
	refused := 0
	for {
		typ, _, err := wire.ReadChannelFrame(r)
		if err != nil {
			return
		}
		if typ == wire.FrameInput {
			if refused++; refused == 1 || refused%50 == 0 {
				w.frame(wire.FrameNotice, []byte("input refused: observers cannot type"))
			}
		}
	}
}
