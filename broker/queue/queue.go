// Package queue is the work queue: technicians plan work from stored
// state, for machines whether or not they are reachable, and the broker
// holding a machine's bridge runs it when the machine is there and has
// checked in on its current bridge.
//
// A job runs at most once. The broker marks it running (replicated)
// before it sends it, and the agent records each job ID in its local
// database before it runs it and answers a repeat with the recorded
// result, so a broker that takes over after a failover never runs a job
// twice. Jobs of one machine run one at a time, oldest first.
//
// An update job (JobRecord.Update) is a job like the others, elevated and
// under the same consent rules, that carries a release instead of a
// script. Before one is sent the queue asks its rollout (the Gate)
// whether it may run now; one that must wait does not hold the
// machine's later jobs, since it has not started.
package queue

import (
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Config configures the queue.
type Config struct {
	// Name is this broker's name, recorded on the jobs it runs.
	Name string
	// ID is this broker's peer ID: the technician of the grants jobs run
	// under.
	ID string
	// Logger receives the queue's logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Store is what the queue reads and writes of stored state.
type Store interface {
	Machine(id string) (store.Machine, bool)
	Machines() []store.Machine
	CreateJobs(js []store.JobRecord) error
	UpdateJob(id string, f func(*store.JobRecord) error) (store.JobRecord, error)
	Jobs(keep func(*store.JobRecord) bool) ([]store.JobRecord, error)
	// JobsByID reads the jobs ids in one read transaction; deleted ones
	// come back with Deleted set, ones never stored not at all.
	JobsByID(ids []string) ([]store.JobRecord, error)
}

// Reach is the reachability layer, as the queue needs it.
type Reach interface {
	// Online reports whether id is bridged to this broker.
	Online(id string) bool
	// Since is when id's current bridge to this broker opened.
	Since(id string) (time.Time, bool)
}

// Sessions is the session-status layer, as the queue needs it.
type Sessions interface {
	// Waiting reports whether id's session waits for the person at the
	// machine.
	Waiting(id, session string) bool
}

// Fleet lists machine cards, for jobs planned by filter.
type Fleet interface {
	Cards(t *wire.Technician, a wire.MachinesArgs) []wire.Card
}

// Gate decides when update jobs run: the rollout room.
type Gate interface {
	// Admit is asked before a queued update job is sent: run it now,
	// or cancel it (for that reason), or neither, and it waits.
	Admit(j *store.JobRecord) (run bool, cancel string)
}

// Releases finds a published release: what an update job sends.
type Releases interface {
	Release(version string) (store.ReleaseRecord, bool, error)
}

// Deps are the queue's collaborators; none may be nil, but for Gate and
// Releases: without them update jobs wait.
type Deps struct {
	Store    Store
	Reach    Reach
	Sessions Sessions
	Fleet    Fleet
	// Host carries jobs to agents over their bridges.
	Host host.Host
	// Key signs the grants jobs run under: the broker's identity key.
	Key   crypto.PrivKey
	Audit *audit.Log
	// Replicated tells the other brokers of records written here.
	Replicated func(keys ...store.Key)
	// Gate says when update jobs may run.
	Gate Gate
	// Releases holds the manifests update jobs carry.
	Releases Releases
}

// Queue is the work queue and its dispatcher.
type Queue struct {
	cfg  Config
	deps Deps
	wake chan struct{}

	// testOnlyOpened, when set (by tests only, before Run), is called by
	// Run with each snapshot of open jobs before it claims their
	// machines: it lets a test change a job in that window. Nil outside
	// tests.
	testOnlyOpened func(byMachine map[string][]store.JobRecord)

	mu      sync.Mutex
	busy    map[string]bool // mu guards all following fields; machines with a job in flight here
	pending map[string]bool // machines with queued or running jobs, as of the last round
	updates int             // update jobs in flight here (at most maxUpdates)
}

// New returns the queue; Run dispatches.
func New(cfg Config, deps Deps) *Queue {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Queue{cfg: cfg, deps: deps, wake: make(chan struct{}, 1), busy: map[string]bool{}}
}

// Kick asks the dispatcher to look for work now: new jobs, a machine
// connecting or checking in.
func (q *Queue) Kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// WantsCheckIn reports whether id has work waiting that cannot start
// until the machine checks in on its current bridge.
func (q *Queue) WantsCheckIn(id string) bool {
	q.mu.Lock()
	p := q.pending[id]
	q.mu.Unlock()
	if !p {
		return false
	}
	since, ok := q.deps.Reach.Since(id)
	m, found := q.deps.Store.Machine(id)
	return ok && found && (m.LastCheckIn == nil || m.LastCheckIn.At.Before(since))
}
