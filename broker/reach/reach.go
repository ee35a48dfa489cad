package reach

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Config configures the reachability layer. Zero values mean the
// documented defaults.
type Config struct {
	// Name is this broker's name, shown on the cards of machines bridged
	// here.
	Name string
	// Heartbeat is the interval agents are told to beat at. Zero means 5 s.
	Heartbeat time.Duration
	// MissedHeartbeats is how many silent intervals mark a machine
	// offline. Zero means 3.
	MissedHeartbeats int
	// LastSeenFlush is how often online machines' last-seen times are
	// stored. Zero means 10 minutes.
	LastSeenFlush time.Duration
	// BrokerListRefresh is how often the broker list agents are sent is
	// rebuilt from the cluster's membership: a connected agent learns of a
	// broker joining, leaving or moving within this plus one heartbeat.
	// Shorter costs a membership read that often. Zero means 1 s.
	BrokerListRefresh time.Duration
	// AcceptRate is how many new bridges a second the broker admits (its
	// bridge.HostConfig.AcceptRate). Agents are told to spread their
	// reconnects over a window sized from it (see reconnectSpread). Zero
	// means no spread: agents reconnect at once.
	AcceptRate float64
	// NotesFile is where the notes saying why machines are away are kept
	// from a clean stop to the next start (SaveNotes, LoadNotes). Empty
	// means they are not kept: a restarted broker that runs alone then
	// shows every machine away for an unknown reason, which the offline
	// alert counts as lost.
	NotesFile string
	// Logger receives the layer's logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Metrics, if not nil, receives readymesh_machines_online.
	Metrics prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.MissedHeartbeats <= 0 {
		c.MissedHeartbeats = 3
	}
	if c.LastSeenFlush <= 0 {
		c.LastSeenFlush = 10 * time.Minute
	}
	if c.BrokerListRefresh <= 0 {
		c.BrokerListRefresh = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Store is what the layer reads and writes of stored state: the machine
// record (only enrolled machines may open presence) and last_seen.
type Store interface {
	Machine(id string) (store.Machine, bool)
	Count() int
	// Machines lists the stored machines: the notes file keeps notes
	// about them.
	Machines() []store.Machine
	SetLastSeen(seen map[string]time.Time) error
}

// Announcer tells the other brokers of a cluster which machines' bridges
// this broker holds.
type Announcer interface {
	SetOnline(id string, since time.Time)
	SetOffline(id string, at time.Time)
}

// Directory says where, in the cluster, a machine is bridged.
type Directory interface {
	Presence(id string) (cluster.PresenceEntry, bool)
	LocalName() string
}

// Signals takes the session-status signals heartbeats carry.
type Signals interface {
	// Beat records a heartbeat of machine id.
	Beat(id string, hb *wire.Heartbeat)
	// Gone forgets what id reported: its presence stream was replaced or
	// closed.
	Gone(id string)
}

// Work is the work queue's side of a machine's arrival.
type Work interface {
	// WantsCheckIn reports whether work waits for a check-in that id
	// has not made since its bridge opened.
	WantsCheckIn(id string) bool
	// Kick asks the queue to look for work now.
	Kick()
}

// Brokers is the cluster's broker list as agents are told it: the hello
// reply carries it, and a heartbeat ack again whenever it changed.
type Brokers interface {
	// Infos lists the alive brokers an agent may fail over to, this one
	// first.
	Infos() []wire.BrokerInfo
	// Left lists the peer IDs of brokers that left the cluster cleanly,
	// for agents to forget.
	Left() []string
}

// Deps are the layer's collaborators.
type Deps struct {
	// Store must not be nil.
	Store Store
	// Signals and Brokers must not be nil.
	Signals Signals
	Brokers Brokers
	// OnChange, if not nil, is called after a machine comes online or
	// goes offline: what the console's event streams show.
	OnChange func()
	// Policy, if not nil, is the fleet's policy for a machine, sent in
	// the presence hello reply.
	Policy func(m *store.Machine) wire.AgentPolicy
}

// Layer is the reachability layer of one broker.
type Layer struct {
	cfg    Config
	deps   Deps
	table  table
	online prometheus.Gauge
	list   *brokerList // shared by every presence stream

	// Set once, by SetWork and SetCluster, before the broker serves.
	work      Work
	announcer Announcer // nil when the broker runs alone
	directory Directory // nil when the broker runs alone
	notes     NoteBook  // the cluster's, or a map when alone

	// Set by Stopping and read by SaveNotes, both called from the
	// broker's stop, in that order.
	stopAt    time.Time
	stopNotes map[string]awayNote // the machines bridged here at stopAt
}

// New returns the layer. SetWork must be called before it serves.
func New(cfg Config, deps Deps) *Layer {
	cfg.setDefaults()
	l := &Layer{cfg: cfg, deps: deps, table: table{rows: map[string]*row{}},
		online: prometheus.NewGauge(prometheus.GaugeOpts{Name: "readymesh_machines_online",
			Help: "Machines with an open presence stream to this broker."})}
	l.list = &brokerList{src: deps.Brokers, every: cfg.BrokerListRefresh, now: cfg.Now}
	l.notes = &localNotes{}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(l.online)
	}
	return l
}

// SetWork connects the work queue, which itself reads this layer. It must
// be called once, before the broker serves.
func (l *Layer) SetWork(w Work) { l.work = w }

// SetCluster connects the cluster's gossip: machines coming and going are
// announced to the other brokers, and machines bridged to them show
// online through them. A broker that runs alone never calls it.
func (l *Layer) SetCluster(a Announcer, d Directory) { l.announcer, l.directory = a, d }

// SetNotes makes n, the cluster's, keep the notes that say why machines
// are away. A broker that runs alone keeps them in a map of its own.
func (l *Layer) SetNotes(n NoteBook) { l.notes = n }

// Online reports whether id has a presence stream to this broker.
func (l *Layer) Online(id string) bool { return l.table.online(id) }

// Since returns when id's current presence stream to this broker opened.
func (l *Layer) Since(id string) (time.Time, bool) { return l.table.since(id) }

// Count is how many machines are bridged to this broker now.
func (l *Layer) Count() int { return l.table.count() }

// Reach is machine m's reachability: through this broker, or through
// another broker of the cluster.
func (l *Layer) Reach(m *store.Machine) wire.Reachability {
	r, ok := l.table.reach(m.ID, l.cfg.Name)
	if !ok {
		r = wire.Reachability{LastSeen: m.LastSeen}
		if broker, since, ok := l.elsewhere(m.ID); ok {
			r = wire.Reachability{Online: true, Since: &since, LastSeen: m.LastSeen, Broker: broker}
		}
	}
	l.annotate(m.ID, &r)
	return r
}

// Elsewhere reports the broker holding id's bridge when it is another
// broker of the cluster.
func (l *Layer) Elsewhere(id string) (broker string, ok bool) {
	broker, _, ok = l.elsewhere(id)
	return broker, ok
}

func (l *Layer) elsewhere(id string) (string, time.Time, bool) {
	if l.directory == nil {
		return "", time.Time{}, false
	}
	e, ok := l.directory.Presence(id)
	if !ok || !e.Online || e.Broker == l.directory.LocalName() {
		return "", time.Time{}, false
	}
	return e.Broker, e.Since, true
}

// Run stores online machines' last-seen times every LastSeenFlush, so a
// broker crash loses at most one interval of them, until ctx ends.
func (l *Layer) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.LastSeenFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.Flush()
		}
	}
}

// Flush stores the last heartbeat of every online machine as its
// last-seen time. The broker calls it once more as it stops.
func (l *Layer) Flush() {
	if err := l.deps.Store.SetLastSeen(l.table.lastBeats()); err != nil {
		l.cfg.Logger.Warn("storing last-seen times", "err", err)
	}
}

// WaitOnline returns once m is reachable, through this broker or another,
// or refuses when timeout passes or ctx ends. It watches the overlay;
// nothing is stored.
func (l *Layer) WaitOnline(ctx context.Context, m store.Machine, timeout time.Duration) (store.Machine, *wire.Error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if cur, ok := l.deps.Store.Machine(m.ID); ok {
			m = cur
		}
		if l.Reach(&m).Online {
			return m, nil
		}
		if time.Now().After(deadline) {
			return m, wire.Errorf(wire.CodeUnavailable, "%s/%s did not come online within %ds", m.Client, m.Name, int(timeout/time.Second))
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return m, wire.Errorf(wire.CodeUnavailable, "the technician left")
		}
	}
}

func (l *Layer) changed() {
	if l.deps.OnChange != nil {
		l.deps.OnChange()
	}
}
