package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// The console's event streams are server-sent events: the broker pushes,
// the page never polls. Any write that may change what the console shows
// notifies Changes; each stream then waits a moment for the rest of the
// burst and sends what differs from what it last sent (view.go).

// streamWriteTimeout bounds each write to a stream: a reader that stops
// reading does not hold it.
const streamWriteTimeout = 10 * time.Second

// events serves GET /api/events.
func (c *Console) events(w http.ResponseWriter, r *http.Request, a *authed) {
	if werr := c.openStream(a.ws); werr != nil {
		writeErr(w, werr)
		return
	}
	defer c.closeStream(a.ws)
	// The baseline is taken before the stream opens: the page reloads its
	// view when the stream opens, so no change falls between the two.
	s := &streamState{}
	wait, gen := c.deps.Changes.wait()
	c.diff(&a.tech, c.fleetView(gen), s, nil)
	// The stream lives for hours, so each write has a deadline of its
	// own, in place of the one Bounded gave the request. (net/http lifts
	// the read deadline itself once a request's body is read.)
	rc := http.NewResponseController(w)
	write := func(text string) bool {
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := fmt.Fprint(w, text); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if !write("event: hello\ndata: {}\n\n") {
		return
	}
	c.stream(r, a, s, wait, write)
}

// openStream counts a new stream against the broker's and the sign-in's
// bounds.
func (c *Console) openStream(ws *webSession) *wire.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams >= maxStreams || ws.streams >= streamsPerKey {
		return wire.Errorf(wire.CodeUnavailable, "too many open console streams (at most %d per sign-in)", streamsPerKey)
	}
	c.streams++
	ws.streams++
	return nil
}

func (c *Console) closeStream(ws *webSession) {
	c.mu.Lock()
	c.streams--
	ws.streams--
	c.mu.Unlock()
}

// stream sends changes until the page goes, the sign-in ends or the
// broker stops.
func (c *Console) stream(r *http.Request, a *authed, s *streamState, wait <-chan struct{}, write func(string) bool) {
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	expiry := time.NewTimer(a.ws.expires.Sub(c.cfg.Now()))
	defer expiry.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.done:
			return
		case <-a.ws.ended:
			write("event: signed-out\ndata: {}\n\n")
			return
		case <-expiry.C:
			write("event: signed-out\ndata: {}\n\n")
			return
		case <-tick.C:
		case <-wait:
			if !c.gather(r) {
				return
			}
		}
		var gen uint64
		wait, gen = c.deps.Changes.wait()
		out, ok := c.changes(a, s, gen)
		if !ok {
			write("event: signed-out\ndata: {}\n\n")
			return
		}
		if !write(out) {
			return
		}
	}
}

// gather waits for the rest of a burst of changes; false if the page or
// the broker went meanwhile.
func (c *Console) gather(r *http.Request) bool {
	t := time.NewTimer(coalesce)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-c.done:
		return false
	}
}

// changes returns the events a's stream must send for generation gen, or
// false when its technician's key is no longer known. Scopes may have
// changed since the last send, so the technician is read again.
func (c *Console) changes(a *authed, s *streamState, gen uint64) (string, bool) {
	t, err := c.deps.Store.TechnicianByKey(a.ws.key)
	if err != nil {
		return "", false
	}
	a.tech = t
	var out strings.Builder
	c.diff(&a.tech, c.fleetView(gen), s, func(event string, data []byte) {
		fmt.Fprintf(&out, "event: %s\ndata: %s\n\n", event, data)
	})
	if out.Len() == 0 {
		out.WriteString(": idle\n\n") // keeps proxies from closing the stream
	}
	return out.String(), true
}
