package readiness

import (
	"runtime"
	"sync"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Query answers a machines request: the cards of the machines in ms whose
// client is visible and that match a, in queue order (see Sort).
//
// Each machine is judged against p.AgentVersion or else the newest agent
// version among the machines of its own client (see Policy.Baseline),
// computed once per Query. Scope and a.Client keep or drop whole clients,
// so the machines in scope hold every machine of their clients: every
// technician sees the same readiness for a machine, and no client's
// versions weigh on another's. reach returns a machine's live reachability;
// nil means every machine is offline. It is called from several goroutines
// at once, so it must be safe for concurrent use. visible says whether the
// technician may see a client's machines; nil shows nothing, so scope is
// never implicit. a should have passed ValidateArgs; an unknown state
// matches nothing, and a.For is not applied (see Match).
//
// Large listings are evaluated and sorted on up to one goroutine per
// processor; all of them have finished when Query returns. The cards share
// pointers and slices with ms, which must not be modified while they are in
// use.
func Query(ms []store.Machine, reach func(m *store.Machine) wire.Reachability, visible func(client string) bool,
	a wire.MachinesArgs, now time.Time, p Policy) []wire.Card {
	if visible == nil {
		return []wire.Card{}
	}
	in := inScope(ms, visible, a.Client)
	parts := split(in, p.judgedIn(ms, in), now, p)
	var all []wire.Card
	if a.Readiness == "" && a.Online == nil && a.PendingUpdate == "" {
		all = presize(parts, len(in)) // every machine in scope gets a card
	}
	each(parts, func(_ int, pt *part) { pt.build(ms, reach, &a) })
	if total(parts) != len(all) {
		all = concat(parts)
	}
	if len(all) == 0 {
		return []wire.Card{} // JSON [] rather than null
	}
	return order(parts, all)
}

// A part is one worker's share of a Query: a run of the machines in scope,
// and the cards and sort keys it makes for them. Everything in it is owned
// by that worker until each returns.
type part struct {
	*evaluator // with its own scratch and slabs
	kb         keyBuilder
	in         []int32     // indices in ms
	judged     judged      // aligned with in
	out        []wire.Card // in the order of in
	keys       []sortKey   // idx is an index in out until sortKeys
}

// Query spreads its work over one goroutine per processor, but never gives
// one fewer than minPerWorker machines: below that, starting it costs more
// than it saves.
const (
	minPerWorker = 4096
	maxWorkers   = 8
	slabBlock    = 1024 // snapshot ages or reasons allocated at once
)

// testOnlyWorkers, if positive, sets the number of workers regardless of
// processors and size, so tests can exercise merging on any machine.
var testOnlyWorkers int

func workers(n int) int {
	if testOnlyWorkers > 0 {
		return max(1, min(testOnlyWorkers, n))
	}
	return max(1, min(runtime.GOMAXPROCS(0), maxWorkers, n/minPerWorker))
}

// inScope returns the indices of the machines in ms that the technician may
// see and that belong to client, if set. visible is only called here, from
// the caller's goroutine.
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

// split cuts in into parts of nearly equal size, each with its own
// evaluator.
func split(in []int32, j judged, now time.Time, p Policy) []*part {
	n := workers(len(in))
	parts := make([]*part, n)
	for i := range parts {
		e := newEvaluator(now, p)
		e.block = slabBlock
		lo, hi := i*len(in)/n, (i+1)*len(in)/n
		pj := j
		if j.slot != nil {
			pj.slot = j.slot[lo:hi]
		}
		parts[i] = &part{evaluator: e, in: in[lo:hi], judged: pj}
	}
	return parts
}

// presize gives the parts, which hold n machines between them, their
// share of one array of n cards, and room for their keys. It returns the
// array.
func presize(parts []*part, n int) []wire.Card {
	all := make([]wire.Card, n)
	off := 0
	for _, pt := range parts {
		pt.out = all[off : off : off+len(pt.in)]
		pt.keys = make([]sortKey, 0, len(pt.in))
		off += len(pt.in)
	}
	return all
}

// each runs f on every part, each on a goroutine of its own but the first,
// which runs on the caller's. It returns when all are done.
func each(parts []*part, f func(i int, pt *part)) {
	var wg sync.WaitGroup
	for i := 1; i < len(parts); i++ {
		wg.Go(func() { f(i, parts[i]) })
	}
	f(0, parts[0])
	wg.Wait()
}

// build evaluates the part's machines in storage order and makes cards and
// sort keys for those that pass the filters. Each card is written in place
// at the end of out, which grows only if it was not sized up front.
func (pt *part) build(ms []store.Machine, reach func(*store.Machine) wire.Reachability, a *wire.MachinesArgs) {
	for k, i := range pt.in {
		m := &ms[i]
		f := pt.assess(m, pt.judged.at(k))
		var r wire.Reachability
		if reach != nil {
			r = reach(m)
		}
		if !matches(a, m.Client, states[f.rank], r.Online, m.PendingUpdates) {
			continue
		}
		pt.keys = append(pt.keys, pt.kb.key(m.Client, m.Name, len(pt.out), f.rank, r.Online))
		c := pt.next()
		c.ID, c.Name, c.Client = m.ID, m.Name, m.Client
		pt.fill(&c.Readiness, m, &f)
		c.Reachability = r
	}
}

// next returns a new zero card at the end of out. Spare capacity is zero
// already, so it is only written when out must grow.
func (pt *part) next() *wire.Card {
	if len(pt.out) == cap(pt.out) {
		pt.out = append(pt.out, wire.Card{})
	} else {
		pt.out = pt.out[:len(pt.out)+1]
	}
	return &pt.out[len(pt.out)-1]
}

func total(parts []*part) int {
	n := 0
	for _, pt := range parts {
		n += len(pt.out)
	}
	return n
}

// concat joins the parts' cards when they were not built in one array.
func concat(parts []*part) []wire.Card {
	if len(parts) == 1 {
		return parts[0].out
	}
	all := make([]wire.Card, 0, total(parts))
	for _, pt := range parts {
		all = append(all, pt.out...)
	}
	return all
}

// order sorts all, the parts' cards joined in part order: each worker sorts
// its own keys, the sorted runs are merged, and the cards are moved once.
func order(parts []*part, all []wire.Card) []wire.Card {
	kbs := make([]*keyBuilder, len(parts))
	for i, pt := range parts {
		kbs[i] = &pt.kb
	}
	ranks := clientRanks(kbs...)
	offsets := make([]int, len(parts))
	for i := 1; i < len(parts); i++ {
		offsets[i] = offsets[i-1] + len(parts[i-1].out)
	}
	runs := make([][]sortKey, len(parts))
	each(parts, func(i int, pt *part) {
		sortKeys(pt.keys, ranks[i], offsets[i], all)
		runs[i] = pt.keys
	})
	permute(all, mergeKeys(runs, all))
	return all
}
