package broker

import (
	"slices"
	"time"

	"github.com/readymesh/readymesh/broker/reach"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/session"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// fleet joins the three layers into machine cards: readiness from the
// store (package readiness applies its rules), reachability from the
// overlay (package reach), and session status from what the agent reported
// (package session). This is the one place they meet.
type fleet struct {
	store  *store.Store
	reach  *reach.Layer
	status *session.Status
	now    func() time.Time
	policy readiness.Policy
	// rollouts adds the rollout a machine is in (and how its last update
	// went) to its card; nil adds nothing.
	rollouts interface{ Annotate(c *wire.Card) }
}

// Cards lists the cards t may see that match a, in queue order:
// readiness first, reachability second.
func (f *fleet) Cards(t *wire.Technician, a wire.MachinesArgs) []wire.Card {
	vis := func(c string) bool { return scope.Visible(t, c) }
	cards := readiness.Query(f.store.Machines(), f.reachability, vis, a, f.now(), f.policy)
	for i := range cards {
		f.addSession(&cards[i])
		f.addRollout(&cards[i])
	}
	if a.For != "" {
		cards = slices.DeleteFunc(cards, func(c wire.Card) bool { return !f.fitFor(a.For, &c) })
	}
	return cards
}

// Card is m's card. Its agent is judged against the newest version among
// the machines of its own client (or the pinned one; see
// readiness.Policy.NewestOf), as in Cards.
func (f *fleet) Card(m *store.Machine) wire.Card {
	newest := f.policy.NewestOf(f.store.Machines(), m.Client)
	c := readiness.Card(m, f.reachability(m), newest, f.now(), f.policy)
	f.addSession(&c)
	f.addRollout(&c)
	return c
}

// addRollout adds to c the rollout its machine is in.
func (f *fleet) addRollout(c *wire.Card) {
	if f.rollouts != nil {
		f.rollouts.Annotate(c)
	}
}

// Show is one machine's card with its full stored state. name may be a
// machine ID, a name, or client/name when a name is used in two clients.
func (f *fleet) Show(t *wire.Technician, name string) (wire.Card, *wire.Error) {
	m, werr := scope.Find(f.store, t, name)
	if werr != nil {
		return wire.Card{}, werr
	}
	card := f.Card(&m)
	snap, err := f.store.Snapshot(m.ID)
	if err != nil {
		return wire.Card{}, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	hist, err := f.store.History(m.ID)
	if err != nil {
		return wire.Card{}, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	card.Snapshot, card.History = snap, hist
	return card, nil
}

// reachability is m's reachability part. The heartbeat signals a card's
// reachability part has always carried (load1, user_present) are session
// status, kept by the session-status table; they are copied here for
// machines bridged to this broker so the card's format stays as
// documented.
func (f *fleet) reachability(m *store.Machine) wire.Reachability {
	r := f.reach.Reach(m)
	if r.Online && f.reach.Online(m.ID) {
		load, user := f.signals(m.ID)
		r.Load1, r.UserPresent = &load, &user
	}
	return r
}

// signals are id's heartbeat signals; zero until its first heartbeat.
func (f *fleet) signals(id string) (load1 float64, userPresent bool) {
	load1, userPresent, _ = f.status.Signals(id)
	return load1, userPresent
}

// addSession fills c's session part, which only the broker holding the
// machine's bridge knows.
func (f *fleet) addSession(c *wire.Card) {
	if f.reach.Online(c.ID) {
		c.Session = f.status.Card(c.ID)
	}
}

// fitFor reports whether a card suits a kind of work, from all three
// layers: readiness (stored), reachability (now) and session status.
func (f *fleet) fitFor(kind string, c *wire.Card) bool {
	if !c.Reachability.Online {
		return false
	}
	// Signals are known only for machines bridged here.
	known := f.reach.Online(c.ID)
	load, user := f.signals(c.ID)
	switch kind {
	case wire.ForQuickFix:
		busy := known && f.status.Busy(load)
		waiting := c.Session != nil && c.Session.Waiting > 0
		return c.Readiness.State == wire.StateReady && !busy && !waiting
	case wire.ForMaintenance:
		return known && !user
	}
	return false
}
