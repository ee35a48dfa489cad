package console

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/peer/wire"
)

// An event stream compares what its technician may see with what it last
// sent, and sends the difference: a `card` event per changed machine,
// `gone` per machine no longer visible, and `alerts`, `queue` or `audit`
// when that list changed (the page reloads it through the API, with the
// same scopes).
//
// The comparison is against a fleetView computed once per change for the
// whole fleet and shared by every stream: a stream filters it by its
// technician's clients and compares 32-byte hashes, so a thousand open
// consoles cost one fleet query per change, not a thousand.

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

// fleetView returns a view at least as new as generation gen (and, for
// the periodic refresh, not older than half the refresh interval).
func (c *Console) fleetView(gen uint64) *fleetView {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	now := c.cfg.Now()
	if v := c.view; v != nil && v.gen >= gen && now.Sub(v.at) < refresh/2 {
		return v
	}
	v := &fleetView{gen: gen, at: now}
	c.viewCards(v)
	c.viewLists(v)
	v.auditSeq, _, _ = c.deps.Store.AuditSince(^uint64(0), nil)
	c.view = v
	return v
}

// everyone runs op for the whole fleet. Not the request's context: the
// view is shared, and one stream's end must not cut it short for the
// others.
func (c *Console) everyone(op string, args any) any {
	res, werr := c.deps.Ops.Do(context.Background(), &scope.Everyone, "", op, args)
	if werr != nil {
		c.cfg.Logger.Warn("console view", "op", op, "err", werr.Message)
	}
	return res
}

// viewCards fills v with every card and the hash streams compare.
func (c *Console) viewCards(v *fleetView) {
	cards, _ := c.everyone(wire.OpMachines, wire.MachinesArgs{}).([]wire.Card)
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
}

// viewLists fills v with the hashes of the queue and the alerts.
func (c *Console) viewLists(v *fleetView) {
	jobs, _ := c.everyone(wire.OpQueueList, wire.QueueListArgs{}).([]wire.Job)
	for _, j := range jobs {
		raw, _ := json.Marshal(j)
		client, _, _ := strings.Cut(j.Machine, "/")
		v.jobs = append(v.jobs, viewItem{client: client, hash: sha256.Sum256(raw)})
	}
	alerts, _ := c.everyone(wire.OpAlerts, nil).([]wire.Alert)
	for _, a := range alerts {
		raw, _ := json.Marshal(a)
		v.alerts = append(v.alerts, viewItem{client: a.Client, hash: sha256.Sum256(raw)})
	}
}

// streamState is what one stream last sent: the view it was compared
// against and the technician as it was then (what it sent of the cards
// is that view filtered by those scopes, so a stream keeps no copy of its
// own), and digests of the lists.
type streamState struct {
	view          *fleetView
	tech          wire.Technician
	alerts, queue [32]byte
	auditSeq      uint64
}

// diff compares v, filtered for technician t, with what the stream sent,
// calls send for each difference (nil send only records the baseline),
// and reports whether anything was sent.
func (c *Console) diff(t *wire.Technician, v *fleetView, s *streamState, send func(event string, data []byte)) bool {
	sent := false
	emit := func(event string, data []byte) {
		if send != nil {
			send(event, data)
			sent = true
		}
	}
	if s.view != nil && send != nil {
		diffCards(t, v, s, emit)
	}
	s.view, s.tech = v, *t
	diffLists(t, v, s, emit)
	c.diffAudit(t, v, s, send == nil, emit)
	return sent
}

// diffCards emits the cards t may see that the stream has not sent in
// this version, and `gone` for those it may no longer see.
func diffCards(t *wire.Technician, v *fleetView, s *streamState, emit func(string, []byte)) {
	prev, pt := s.view, &s.tech
	for _, vc := range v.cards {
		if !scope.Visible(t, vc.card.Client) {
			continue
		}
		// Sent already: it was in the last view, visible to the
		// technician as it was then, and has not changed.
		if old := prev.byID[vc.card.ID]; old != nil && old.cmp == vc.cmp && scope.Visible(pt, old.card.Client) {
			continue
		}
		emit("card", vc.json())
	}
	for _, old := range prev.cards {
		if !scope.Visible(pt, old.card.Client) {
			continue
		}
		if now := v.byID[old.card.ID]; now == nil || !scope.Visible(t, now.card.Client) {
			raw, _ := json.Marshal(map[string]string{"id": old.card.ID})
			emit("gone", raw)
		}
	}
}

// diffLists emits `alerts` and `queue` when the part of that list t may
// see changed.
func diffLists(t *wire.Technician, v *fleetView, s *streamState, emit func(string, []byte)) {
	for _, l := range []struct {
		event string
		items []viewItem
		last  *[32]byte
	}{{"alerts", v.alerts, &s.alerts}, {"queue", v.jobs, &s.queue}} {
		h := sha256.New()
		for _, it := range l.items {
			if scope.Visible(t, it.client) {
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
}

// diffAudit emits `audit` when an entry t may see was added since the
// stream's last look; reading only the entries since then, newest first,
// until one t may see.
func (c *Console) diffAudit(t *wire.Technician, v *fleetView, s *streamState, baseline bool, emit func(string, []byte)) {
	if v.auditSeq == s.auditSeq {
		return
	}
	if !baseline {
		_, found, _ := c.deps.Store.AuditSince(s.auditSeq, func(e *wire.AuditEntry) bool { return scope.AuditVisible(t, e) })
		if found {
			emit("audit", []byte("{}"))
		}
	}
	s.auditSeq = v.auditSeq
}
