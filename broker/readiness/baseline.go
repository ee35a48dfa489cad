package readiness

import "github.com/readymesh/readymesh/broker/store"

// An agent is behind when it is older than the version it is judged
// against: Policy.AgentVersion when the MSP pins one, else the newest
// version reported among the machines of its own client. Never the newest
// of the whole fleet: a technician sees only some clients, and a version
// only another client's agents run is no fact about this one.

// Baseline is the agent version the machines of each client are judged
// against, computed once for a listing. The zero value judges no machine
// behind. It is read-only once made, so any number of goroutines may use
// it at once.
type Baseline struct {
	pin      string            // Policy.AgentVersion; when set, byClient is nil
	byClient map[string]string // client → newest version its machines report
}

// Baseline returns the versions the machines of ms are judged against:
// p.AgentVersion for every client when set; else, for each client, the
// newest version (see Newest) among the machines of ms of that client.
// Newest versions are per client because a technician sees only some
// clients: a version only another client's agents report is not a fact
// about this client, and must not mark its machines behind. ms should
// hold every machine of the clients it holds. It costs one pass over ms
// and a map of one entry per client.
func (p Policy) Baseline(ms []store.Machine) Baseline {
	if p.AgentVersion != "" {
		return Baseline{pin: p.AgentVersion}
	}
	var acc perClient
	for i := range ms {
		acc.add(&ms[i])
	}
	return acc.baseline()
}

// judged is the version each of Query's machines in scope is judged
// against, as Baseline has it: the k-th machine's is vs[slot[k]], or
// vs[0] for all when slot is nil (a pinned version). Indices rather than
// a lookup by client keep the cost at one map lookup per machine.
type judged struct {
	vs   []string
	slot []int32 // aligned with the machines in scope
}

// judgedIn works out judged for the machines of ms at indices in, which
// must hold every machine of their clients.
func (p Policy) judgedIn(ms []store.Machine, in []int32) judged {
	if p.AgentVersion != "" {
		return judged{vs: []string{p.AgentVersion}}
	}
	var acc perClient
	slot := make([]int32, len(in))
	for k, i := range in {
		slot[k] = acc.add(&ms[i])
	}
	vs := make([]string, len(acc.ns))
	for i := range acc.ns {
		vs[i] = acc.ns[i].v
	}
	return judged{vs: vs, slot: slot}
}

// at returns the version the k-th machine in scope is judged against.
func (j *judged) at(k int) string {
	if j.slot == nil {
		return j.vs[0]
	}
	return j.vs[j.slot[k]]
}

// perClient gathers the newest version of each client: one map lookup
// per machine, and no allocation per client beyond the map's and the
// slice's growth.
type perClient struct {
	idx map[string]int32 // client → index in ns
	ns  []newest
}

// add takes m's version into account and returns its client's index.
func (pc *perClient) add(m *store.Machine) int32 {
	i, ok := pc.idx[m.Client]
	if !ok {
		if pc.idx == nil {
			pc.idx = map[string]int32{}
		}
		i = int32(len(pc.ns))
		pc.idx[m.Client] = i
		pc.ns = append(pc.ns, newest{})
	}
	pc.ns[i].add(m.AgentVersion)
	return i
}

func (pc *perClient) baseline() Baseline {
	b := Baseline{byClient: make(map[string]string, len(pc.idx))}
	for c, i := range pc.idx {
		b.byClient[c] = pc.ns[i].v
	}
	return b
}

// For returns the version client's machines are judged against; empty
// means that none of them is behind.
func (b Baseline) For(client string) string {
	if b.pin != "" {
		return b.pin
	}
	return b.byClient[client]
}

// NewestOf returns the version the machines of client are judged against:
// p.AgentVersion when set, else the newest version among the machines of
// ms of that client. It is Baseline for one machine's card.
func (p Policy) NewestOf(ms []store.Machine, client string) string {
	if p.AgentVersion != "" {
		return p.AgentVersion
	}
	var n newest
	for i := range ms {
		if ms[i].Client == client {
			n.add(ms[i].AgentVersion)
		}
	}
	return n.v
}
