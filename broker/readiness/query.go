package readiness

import (
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Query answers a machines request: the cards of the machines in ms whose
// client is visible and that match a, in queue order (see Sort).
//
// The newest agent version is taken from the whole of ms, not only the
// visible part, so every technician sees the same readiness for a machine.
// reach returns a machine's live reachability by ID; nil means every machine
// is offline. visible says whether the technician may see a client's
// machines; nil shows nothing, so scope is never implicit. a should have
// passed ValidateArgs; an unknown state matches nothing.
//
// The cards share pointers and slices with ms, which must not be modified
// while they are in use.
func Query(ms []store.Machine, reach func(id string) wire.Reachability, visible func(client string) bool,
	a wire.MachinesArgs, now time.Time, p Policy) []wire.Card {
	if visible == nil {
		return []wire.Card{}
	}
	e := newEvaluator(Newest(ms), now, p)
	e.block = slabBlock
	q := query{
		evaluator: e,
		ms:        ms,
		reach:     reach,
		args:      &a,
	}
	in := inScope(ms, visible, a.Client)
	q.build(in)
	if len(q.out) == 0 {
		return []wire.Card{} // JSON [] rather than null
	}
	q.kb.sort(q.keys, q.out)
	permute(q.out, q.keys)
	return q.out
}

// query is the state of one Query call.
type query struct {
	*evaluator
	ms    []store.Machine
	reach func(string) wire.Reachability
	args  *wire.MachinesArgs

	kb   keyBuilder
	out  []wire.Card // in the order of ms until permuted
	keys []sortKey   // idx is an index in out
}

// slabBlock is how many snapshot ages or reasons Query allocates at once.
const slabBlock = 1024

// inScope returns the indices of the machines in ms that the technician may
// see and that belong to client, if set.
func inScope(ms []store.Machine, visible func(string) bool, client string) []int32 {
	var in []int32
	for i := range ms {
		c := ms[i].Client
		if (client == "" || c == client) && visible(c) {
			in = append(in, int32(i))
		}
	}
	return in
}

// build evaluates the machines at in, in storage order, and makes cards and
// sort keys for those that pass the filters. Every card costs one slot in
// out; when no filter beyond scope is set, out is sized exactly up front.
func (q *query) build(in []int32) {
	a := q.args
	if a.Readiness == "" && a.Online == nil && a.PendingUpdate == "" {
		q.out = make([]wire.Card, 0, len(in))
		q.keys = make([]sortKey, 0, len(in))
	}
	for _, i := range in {
		m := &q.ms[i]
		f := q.assess(m)
		var r wire.Reachability
		if q.reach != nil {
			r = q.reach(m.ID)
		}
		if !matches(a, m.Client, states[f.rank], r.Online, m.PendingUpdates) {
			continue
		}
		q.keys = append(q.keys, q.kb.key(m.Client, m.Name, len(q.out), f.rank, r.Online))
		c := q.next()
		c.ID, c.Name, c.Client = m.ID, m.Name, m.Client
		q.fill(&c.Readiness, m, &f)
		c.Reachability = r
	}
}

// next returns a new zero card at the end of out. Spare capacity is zero
// already, so it is only written when out must grow.
func (q *query) next() *wire.Card {
	if len(q.out) == cap(q.out) {
		q.out = append(q.out, wire.Card{})
	} else {
		q.out = q.out[:len(q.out)+1]
	}
	return &q.out[len(q.out)-1]
}
