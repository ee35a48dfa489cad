package broker

import (
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// The fleet gauges on /metrics are what operators alert on: machines by
// readiness state and reachability, bridges by transport, sessions by
// path, gossip members by state and the replication lag. They are worked
// out when Prometheus scrapes, from what the rooms already hold in
// memory (the store's machine index, the presence table, the
// session-status table, the libp2p host's connections, the membership),
// so nothing is counted twice and no snapshot is read.
//
// Every label value comes from a fixed set written here or in package
// wire; nothing a caller sends becomes one. Where a value is reported by
// an agent (a session's path), it is mapped onto the set, and anything
// else counts as "other". There is no client label: the machine gauges
// are totals over every client, so a scrape tells nothing about one
// client and the number of series does not grow with the fleet.
//
// /metrics answers whoever reaches the HTTP port, so a scrape within
// fleetEvery of the last one gets that one's values: a flood of scrapes
// costs at most one pass over the fleet per interval.

// fleetEvery is how long the fleet gauges of one scrape are served again.
const fleetEvery = time.Second

// Label values of the fleet gauges that are not wire constants.
const (
	labelOther     = "other"
	transportQUIC  = "quic"
	transportTCP   = "tcp"
	transportWS    = "websocket"
	reachableTrue  = "true"
	reachableFalse = "false"
)

// The fixed label sets. Each is exported in full at every scrape, zeros
// included, so a series never vanishes when its count drops to zero.
var (
	bridgeTransports = []string{transportQUIC, transportTCP, transportWS, labelOther}
	sessionPaths     = []string{wire.PathDirectQUIC, wire.PathDirectWebRTC, wire.PathRelayed, wire.PathRelayedTURN, labelOther}
	memberStates     = []string{cluster.StateAlive, cluster.StateSuspect, cluster.StateDead, cluster.StateLeft}
)

var (
	descMachines = prometheus.NewDesc("readymesh_machines",
		"Machines in the store, every client together (no client label), by readiness state and by whether "+
			"their bridge is open to some broker of the cluster now. The same on every broker of a converged "+
			"cluster: aggregate brokers with max, not sum.",
		[]string{"readiness", "reachable"}, nil)
	descBridges = prometheus.NewDesc("readymesh_bridges",
		"Open libp2p connections of this broker (agents', technicians' and other brokers' bridges), by transport.",
		[]string{"transport"}, nil)
	descSessions = prometheus.NewDesc("readymesh_sessions",
		"Live sessions the agents bridged to this broker report, by path; a path no broker knows counts as other.",
		[]string{"path"}, nil)
	descWaiting = prometheus.NewDesc("readymesh_sessions_waiting_approval",
		"Session requests the agents bridged to this broker report waiting for the person at the machine.",
		nil, nil)
	descMembers = prometheus.NewDesc("readymesh_cluster_members",
		"Brokers of the gossip cluster as this broker sees them, itself included, by state. Only in a cluster.",
		[]string{"state"}, nil)
	descLag = prometheus.NewDesc("readymesh_replication_lag_seconds",
		"Longest time, over the other live brokers, since this broker last held every record that broker held "+
			"(a push/pull exchange whose digests matched, or whose differing records were then pulled). "+
			"A few push/pull intervals when healthy; it grows while pulls from a broker fail. Only in a cluster.",
		nil, nil)
)

// fleetReach is the reachability layer as the gauges read it.
type fleetReach interface {
	Online(id string) bool
	Elsewhere(id string) (broker string, ok bool)
}

// fleetCollector is the prometheus.Collector of the fleet gauges.
type fleetCollector struct {
	// Immutable after fleetMetrics.
	machines func() []store.Machine
	reach    fleetReach
	sessions interface {
		EachSession(fn func(path string, waiting bool))
	}
	conns interface{ Conns() []network.Conn }
	// members and lag are nil when the broker runs alone.
	members interface{ Members() []cluster.Member }
	lag     interface{ Lag() (time.Duration, bool) }
	now     func() time.Time
	policy  readiness.Policy
	every   time.Duration // fleetEvery

	mu    sync.Mutex // serialises scrapes; guards the following fields
	taken time.Time  // when last was made (time.Now: monotonic, unlike now)
	last  []prometheus.Metric
}

// fleetMetrics returns the collector of b's fleet gauges.
func (b *Broker) fleetMetrics() *fleetCollector {
	fc := &fleetCollector{machines: b.store.Machines, reach: b.reach, sessions: b.sessions.Status(),
		conns: b.host.Network(), now: b.cfg.Now, policy: b.cfg.Readiness, every: fleetEvery}
	if b.cluster != nil { // a nil *cluster.Pools must not become a non-nil interface
		fc.members, fc.lag = b.cluster, b.repl
	}
	return fc
}

// Describe implements prometheus.Collector.
func (fc *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMachines, descBridges, descSessions, descWaiting, descMembers, descLag} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the gauges of the last scrape
// if it was within fc.every, else new ones.
func (fc *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	fc.mu.Lock()
	if fc.last == nil || time.Since(fc.taken) >= fc.every {
		fc.last = fc.gather()
		fc.taken = time.Now()
	}
	ms := fc.last // never modified once made
	fc.mu.Unlock()
	for _, m := range ms {
		ch <- m
	}
}

// gather works out every fleet gauge.
func (fc *fleetCollector) gather() []prometheus.Metric {
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	fc.machineGauges(gauge)
	fc.bridgeGauges(gauge)
	fc.sessionGauges(gauge)
	fc.clusterGauges(gauge)
	return out
}

// gaugeFunc adds one gauge with its label values.
type gaugeFunc func(d *prometheus.Desc, v float64, labels ...string)

// machineGauges counts the stored machines by readiness state and
// reachability: one pass over the store's in-memory index, with the
// readiness rules applied without building cards.
func (fc *fleetCollector) machineGauges(gauge gaugeFunc) {
	states := readiness.States()
	idx := make(map[string]int, len(states))
	for i, s := range states {
		idx[s] = i
	}
	counts := make([][2]int, len(states)) // [reachable, not]
	readiness.EachState(fc.machines(), fc.now(), fc.policy, func(m *store.Machine, state string) {
		i, ok := idx[state]
		if !ok {
			return // not a state of the set: never happens, and never a label
		}
		if fc.reachable(m.ID) {
			counts[i][0]++
		} else {
			counts[i][1]++
		}
	})
	for i, s := range states {
		gauge(descMachines, float64(counts[i][0]), s, reachableTrue)
		gauge(descMachines, float64(counts[i][1]), s, reachableFalse)
	}
}

// reachable reports whether id's bridge is open to this broker or to
// another broker of the cluster.
func (fc *fleetCollector) reachable(id string) bool {
	if fc.reach.Online(id) {
		return true
	}
	_, ok := fc.reach.Elsewhere(id)
	return ok
}

// bridgeGauges counts the host's open connections by transport.
func (fc *fleetCollector) bridgeGauges(gauge gaugeFunc) {
	n := map[string]int{}
	for _, c := range fc.conns.Conns() {
		n[bridgeTransport(c.RemoteMultiaddr())]++
	}
	for _, t := range bridgeTransports {
		gauge(descBridges, float64(n[t]), t)
	}
}

// bridgeTransport names a connection's transport from its remote
// multiaddr: quic, websocket (over TCP), tcp, or other.
func bridgeTransport(a ma.Multiaddr) string {
	name := labelOther
	for _, c := range a {
		switch c.Code() {
		case ma.P_QUIC_V1:
			return transportQUIC
		case ma.P_WS, ma.P_WSS:
			return transportWS
		case ma.P_TCP:
			name = transportTCP // unless /ws follows
		}
	}
	return name
}

// sessionGauges counts the sessions agents reported, by path.
func (fc *fleetCollector) sessionGauges(gauge gaugeFunc) {
	n := map[string]int{}
	waiting := 0
	fc.sessions.EachSession(func(path string, wait bool) {
		if wait {
			waiting++
			return
		}
		n[sessionPath(path)]++
	})
	for _, p := range sessionPaths {
		gauge(descSessions, float64(n[p]), p)
	}
	gauge(descWaiting, float64(waiting))
}

// sessionPath maps a path as an agent reports it ("direct-quic",
// "relayed via eu-1", …) onto sessionPaths: its kind when it is one of
// wire's, else other.
func sessionPath(reported string) string {
	kind, _, _ := strings.Cut(reported, " ")
	switch kind {
	case wire.PathDirectQUIC, wire.PathDirectWebRTC, wire.PathRelayed, wire.PathRelayedTURN:
		return kind
	}
	return labelOther
}

// clusterGauges counts the gossip members by state and reports the
// replication lag; a broker alone has neither.
func (fc *fleetCollector) clusterGauges(gauge gaugeFunc) {
	if fc.members == nil {
		return
	}
	n := map[string]int{}
	for _, m := range fc.members.Members() {
		n[m.State]++
	}
	for _, s := range memberStates {
		gauge(descMembers, float64(n[s]), s)
	}
	if lag, ok := fc.lag.Lag(); ok {
		gauge(descLag, lag.Seconds())
	}
}
