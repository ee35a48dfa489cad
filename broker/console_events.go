package broker

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// The console's live updates are server-sent events. The broker pushes;
// the page never polls. Any write that may change what the console shows
// (a store commit, a machine coming or going, a session report) notifies
// changes; each stream then waits a moment for the rest of the burst,
// compares what its technician may see with what it last sent, and sends
// the difference: a `card` event per changed machine, `gone` per machine
// no longer visible, and `alerts`, `queue` or `audit` when that list
// changed (the page reloads it through the API, with the same scopes).
//
// The comparison is against a fleetView computed once per change for the
// whole fleet and shared by every stream: a stream filters it by its
// technician's clients and compares 32-byte hashes, so a thousand open
// consoles cost one fleet query per change, not a thousand.

// changes tells readers that something the console shows may have
// changed: each notify closes the channel current readers wait on.
type changes struct {
	mu  sync.Mutex
	ch  chan struct{}
	gen uint64
}

func newChanges() *changes { return &changes{ch: make(chan struct{})} }

func (c *changes) notify() {
	c.mu.Lock()
	close(c.ch)
	c.ch = make(chan struct{})
	c.gen++
	c.mu.Unlock()
}

// wait returns a channel closed by the next notify, and the generation it
// ends.
func (c *changes) wait() (<-chan struct{}, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch, c.gen
}

// fleetView is the whole fleet as the console shows it, as of one
// generation of changes.
type fleetView struct {
	gen uint64
	at  time.Time

	cards []*viewCard
	byID  map[string]*viewCard
	// jobs and alerts, each with its client and a hash of its JSON.
	jobs, alerts []viewItem
	auditSeq     uint64
}

type viewCard struct {
	card wire.Card
	cmp  [32]byte // hash of the card without what ticks (age, load)

	once sync.Once
	full []byte // the card's JSON, made when a stream first sends it
}

// json returns the card as sent, encoded once per view.
func (v *viewCard) json() []byte {
	v.once.Do(func() { v.full, _ = json.Marshal(&v.card) })
	return v.full
}

type viewItem struct {
	client string
	hash   [32]byte
}

// everyone sees every client: the view is computed once for all and
// filtered per technician.
var everyone = wire.Technician{Name: "console-view", Admin: true}

// fleetView returns a view at least as new as generation gen (and, for
// the periodic refresh, not older than half the refresh interval).
func (c *webConsole) fleetView(gen uint64) *fleetView {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	now := c.b.cfg.Now()
	if v := c.view; v != nil && v.gen >= gen && now.Sub(v.at) < consoleRefresh/2 {
		return v
	}
	v := &fleetView{gen: gen, at: now}
	call := func(op string, args any) any {
		raw, _ := json.Marshal(args)
		// Not the request's context: the view is shared, and one
		// stream's end must not cut it short for the others.
		res, werr := c.b.techOp(context.Background(), &everyone, "", &wire.Request{Op: op, Args: raw})
		if werr != nil {
			c.b.log.Warn("console view", "op", op, "err", werr.Message)
		}
		return res
	}
	cards, _ := call(wire.OpMachines, wire.MachinesArgs{}).([]wire.Card)
	v.cards = make([]*viewCard, len(cards))
	v.byID = make(map[string]*viewCard, len(cards))
	for i := range cards {
		vc := &viewCard{card: cards[i]}
		// Ages tick and load wanders with every heartbeat: neither is a
		// change worth pushing (the page ages times itself).
		cmp := cards[i]
		cmp.Readiness.SnapshotAgeSec, cmp.Reachability.Load1 = nil, nil
		key, _ := json.Marshal(&cmp)
		vc.cmp = sha256.Sum256(key)
		v.cards[i] = vc
		v.byID[vc.card.ID] = vc
	}
	jobs, _ := call(wire.OpQueueList, wire.QueueListArgs{}).([]wire.Job)
	for _, j := range jobs {
		raw, _ := json.Marshal(j)
		client, _, _ := strings.Cut(j.Machine, "/")
		v.jobs = append(v.jobs, viewItem{client: client, hash: sha256.Sum256(raw)})
	}
	alerts, _ := call(wire.OpAlerts, nil).([]wire.Alert)
	for _, a := range alerts {
		raw, _ := json.Marshal(a)
		v.alerts = append(v.alerts, viewItem{client: a.Client, hash: sha256.Sum256(raw)})
	}
	v.auditSeq, _, _ = c.b.store.AuditSince(^uint64(0), nil)
	c.view = v
	return v
}

// streamState is what one stream last sent: the view it was compared
// against and the technician as it was then (what it sent of the cards
// is that view filtered by those scopes, so a stream keeps no copy of
// its own), and digests of the lists.
type streamState struct {
	view          *fleetView
	tech          wire.Technician
	alerts, queue [32]byte
	auditSeq      uint64
}

// diff compares v, filtered for technician t, with what the stream sent,
// calls send for each difference (nil send only records), and reports
// whether anything was sent.
func (c *webConsole) diff(t *wire.Technician, v *fleetView, s *streamState, send func(event string, data []byte)) bool {
	sent := false
	emit := func(event string, data []byte) {
		if send != nil {
			send(event, data)
			sent = true
		}
	}
	if prev, pt := s.view, &s.tech; prev != nil && send != nil {
		// sentBefore says whether the stream already sent this version of
		// a card: it was in the last view, visible to the technician as
		// it was then, and has not changed.
		for _, vc := range v.cards {
			if !visible(t, vc.card.Client) {
				continue
			}
			if old := prev.byID[vc.card.ID]; old != nil && old.cmp == vc.cmp && visible(pt, old.card.Client) {
				continue
			}
			emit("card", vc.json())
		}
		for _, old := range prev.cards {
			if !visible(pt, old.card.Client) {
				continue
			}
			if now := v.byID[old.card.ID]; now == nil || !visible(t, now.card.Client) {
				raw, _ := json.Marshal(map[string]string{"id": old.card.ID})
				emit("gone", raw)
			}
		}
	}
	s.view, s.tech = v, *t
	for _, l := range []struct {
		event string
		items []viewItem
		last  *[32]byte
	}{{"alerts", v.alerts, &s.alerts}, {"queue", v.jobs, &s.queue}} {
		h := sha256.New()
		for _, it := range l.items {
			if visible(t, it.client) {
				h.Write(it.hash[:])
			}
		}
		var d [32]byte
		h.Sum(d[:0])
		if d != *l.last {
			*l.last = d
			emit(l.event, []byte("{}"))
		}
	}
	if v.auditSeq != s.auditSeq && send == nil {
		s.auditSeq = v.auditSeq // the baseline: nothing to look through
	} else if v.auditSeq != s.auditSeq {
		// Only the entries since the last look are read, newest first,
		// until one this technician may see.
		_, found, _ := c.b.store.AuditSince(s.auditSeq, func(e *wire.AuditEntry) bool { return auditVisible(t, e) })
		s.auditSeq = v.auditSeq
		if found {
			emit("audit", []byte("{}"))
		}
	}
	return sent
}

// events serves GET /api/events.
func (c *webConsole) events(w http.ResponseWriter, r *http.Request, a *authed) {
	rc := http.NewResponseController(w)
	c.mu.Lock()
	if c.streams >= consoleMaxStreams || a.ws.streams >= consoleStreamsPerKey {
		c.mu.Unlock()
		writeErr(w, wire.Errorf(wire.CodeUnavailable, "too many open console streams (at most %d per sign-in)", consoleStreamsPerKey))
		return
	}
	c.streams++
	a.ws.streams++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.streams--
		a.ws.streams--
		c.mu.Unlock()
	}()
	// The baseline is taken before the stream opens: the page reloads its
	// view when the stream opens, so no change falls between the two.
	s := &streamState{}
	wait, gen := c.b.changes.wait()
	c.diff(&a.tech, c.fleetView(gen), s, nil)
	// A reader that stops reading does not hold the stream: each write
	// has 10 s.
	write := func(text string) bool {
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
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
	refresh := time.NewTicker(consoleRefresh)
	defer refresh.Stop()
	expiry := time.NewTimer(a.ws.expires.Sub(c.b.cfg.Now()))
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
		case <-refresh.C:
		case <-wait:
			// Gather the rest of a burst.
			t := time.NewTimer(consoleCoalesce)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-c.done:
				t.Stop()
				return
			}
		}
		wait, gen = c.b.changes.wait()
		// Scopes may have changed since the last send.
		t, err := c.b.store.TechnicianByKey(a.ws.key)
		if err != nil {
			write("event: signed-out\ndata: {}\n\n")
			return
		}
		a.tech = t
		var out strings.Builder
		c.diff(&a.tech, c.fleetView(gen), s, func(event string, data []byte) {
			fmt.Fprintf(&out, "event: %s\ndata: %s\n\n", event, data)
		})
		if out.Len() == 0 {
			out.WriteString(": idle\n\n") // keeps proxies from closing the stream
		}
		if !write(out.String()) {
			return
		}
	}
}
