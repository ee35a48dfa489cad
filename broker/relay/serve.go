package relay

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/peer/wire"
)

// Serve serves one half of a relayed session (wire.ProtoRelay): the first
// half waits for the second, and the second runs the splice.
func (r *Relay) Serve(s *serve.Stream, h *wire.RelayHello) (any, error) {
	sl, first, err := r.join(s, h.Session)
	if err != nil {
		return nil, err
	}
	if first {
		return nil, r.waitForPeer(sl, h.Session)
	}
	r.run(sl, h.Session, s.Stream)
	return nil, nil
}

// join admits s as one half of session: first reports whether it is the
// first to arrive (and now waits in the slot).
func (r *Relay) join(s *serve.Stream, session string) (sl *slot, first bool, err *wire.Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sl = r.slots[session]
	switch {
	case sl == nil:
		return nil, false, wire.Errorf(wire.CodeNotFound, "no relayed session %s on this broker", session)
	case s.Remote != sl.tech && s.Remote != sl.agent:
		return nil, false, wire.Errorf(wire.CodeForbidden, "session %s is not yours to relay", session)
	case r.cfg.Now().After(sl.expires):
		return nil, false, wire.Errorf(wire.CodeForbidden, "relayed session %s expired before both sides joined", session)
	case sl.waiting != nil && sl.waitingTech == (s.Remote == sl.tech):
		return nil, false, wire.Errorf(wire.CodeConflict, "this side of session %s has joined already", session)
	}
	if sl.waiting == nil {
		sl.waiting, sl.waitingTech = s.Stream, s.Remote == sl.tech
		return sl, true, nil
	}
	delete(r.slots, session)
	r.spliced++
	r.perPeer[sl.tech]++
	r.perPeer[sl.agent]++
	return sl, false, nil
}

// waitForPeer holds the first half until the second has joined and the
// splice ended, or refuses it after joinWait.
func (r *Relay) waitForPeer(sl *slot, session string) *wire.Error {
	t := time.NewTimer(joinWait)
	defer t.Stop()
	select {
	case <-sl.joined:
		<-sl.done // the second half's handler runs the splice
		return nil
	case <-t.C:
	}
	r.mu.Lock()
	joined := r.slots[session] != sl // the other side took it just now
	if !joined {
		delete(r.slots, session)
	}
	r.mu.Unlock()
	if joined {
		<-sl.joined
		<-sl.done
		return nil
	}
	return wire.Errorf(wire.CodeUnavailable, "the other side never joined the relay")
}

// run tells both halves they are joined and splices them until either
// ends or a limit is reached.
func (r *Relay) run(sl *slot, session string, second network.Stream) {
	close(sl.joined)
	defer r.release(sl)
	first := sl.waiting
	for _, st := range []network.Stream{first, second} {
		st.SetDeadline(time.Time{})
		if err := wire.Write(st, &wire.RelayReady{}); err != nil {
			first.Reset()
			second.Reset()
			return
		}
	}
	r.active.Inc()
	defer r.active.Dec()
	r.cfg.Logger.Info("relaying session", "session", session, "technician", sl.tech, "agent", sl.agent)
	start := time.Now()
	n := r.splice(first, second)
	r.cfg.Logger.Info("relay ended", "session", session, "bytes", n, "duration", time.Since(start).Round(time.Millisecond))
}

// release returns a spliced session's counts and wakes the first half.
func (r *Relay) release(sl *slot) {
	r.mu.Lock()
	r.spliced--
	for _, p := range []peer.ID{sl.tech, sl.agent} {
		if r.perPeer[p]--; r.perPeer[p] <= 0 {
			delete(r.perPeer, p)
		}
	}
	r.mu.Unlock()
	close(sl.done)
}
