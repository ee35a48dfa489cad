package rollout

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Config configures the room. Zero values mean the documented defaults.
type Config struct {
	// Name is this broker's name in the cluster: the home of the
	// rollouts it starts. It must not be empty.
	Name string
	// Every is how often the driver looks at its rollouts, and the least
	// time between two looks however often it is kicked. Zero means 1 s.
	Every time.Duration
	// Grace is how long past an update's health window the driver waits
	// for the agent's own word (its rollback report comes only once the
	// agent's window has passed) before it calls the machine failed.
	// Zero means 1 minute.
	Grace time.Duration
	// Batch bounds the jobs one tick creates, cancels or annotates.
	// Larger batches finish a big wave sooner at the cost of longer
	// store transactions. Zero means 256.
	Batch int
	// Policy is the readiness policy, to pick ready machines as
	// canaries.
	Policy readiness.Policy
	// Logger receives the room's logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Every <= 0 {
		c.Every = time.Second
	}
	if c.Grace <= 0 {
		c.Grace = time.Minute
	}
	if c.Batch <= 0 {
		c.Batch = 256
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Machines is the fleet as the room reads it.
type Machines interface {
	Machine(id string) (store.Machine, bool)
	Machines() []store.Machine
	ClientExists(name string) bool
}

// Jobs are the update jobs the room queues and reads.
type Jobs interface {
	CreateNewJobs(js []store.JobRecord) (skipped []string, err error)
	UpdateJobs(ids []string, f func(*store.JobRecord) error) ([]store.JobRecord, error)
	Jobs(keep func(*store.JobRecord) bool) ([]store.JobRecord, error)
	JobsByID(ids []string) ([]store.JobRecord, error)
}

// Records are the rollout records.
type Records interface {
	CreateRollout(r store.RolloutRecord) error
	UpdateRollout(id string, f func(*store.RolloutRecord) error) (store.RolloutRecord, error)
	Rollout(id string) (store.RolloutRecord, bool, error)
	Rollouts(keep func(*store.RolloutRecord) bool) ([]store.RolloutRecord, error)
	RolloutsWhere(keep func(id, state string) bool) ([]store.RolloutRecord, error)
}

// Store is everything the room reads and writes: *store.Store.
type Store interface {
	Machines
	Jobs
	Records
}

// Releases finds a published release by its version.
type Releases interface {
	Release(version string) (store.ReleaseRecord, bool, error)
}

// Reach is a machine's reachability now, anywhere in the cluster.
type Reach interface {
	Reach(m *store.Machine) wire.Reachability
}

// Members lists the brokers of the cluster, to tell who drives a
// rollout whose home broker is gone.
type Members interface {
	Members() []cluster.Member
	LocalName() string
}

// Deps are the room's collaborators. Members and Changed may be nil;
// the others may not.
type Deps struct {
	Store    Store
	Releases Releases
	Reach    Reach
	// Members is nil when the broker runs alone: it then drives every
	// rollout.
	Members Members
	Audit   *audit.Log
	// Replicated tells the other brokers of records written here.
	Replicated func(keys ...store.Key)
	// Changed, if set, is called when a rollout pauses, resumes or ends,
	// so alerts are worked out again at once (alerts.Alerts.Kick).
	Changed func()
}

// Room is the rollout room: its operations, its driver and the gate the
// queue asks.
type Room struct {
	cfg  Config
	deps Deps
	wake chan struct{}

	mu       sync.Mutex
	views    map[string]*view    // mu guards all following fields; the rollouts of the last tick, by ID
	machines map[string][]ref    // machine ID → its refs in active rollouts, newest rollout first
	admitted map[string]int      // update jobs let through since the last tick, by rollout
	clean    map[string]bool     // aborted rollouts with no queued job left
	ids      map[string][]string // the update job IDs of the rollouts looked at, by rollout
	releases map[string]relInfo
	reports  map[string]*wire.UpdateReport // machine ID → the newest update report its jobs hold
	scanned  time.Time                     // when the reports of the rollouts that stopped were last read
	// ended holds the rollouts a tick no longer looks at, by ID: when the
	// room first saw each so, zero once its jobs need no more reads.
	ended map[string]time.Time
}

// New returns the room; Run drives.
func New(cfg Config, deps Deps) *Room {
	cfg.setDefaults()
	return &Room{cfg: cfg, deps: deps, wake: make(chan struct{}, 1), views: map[string]*view{},
		machines: map[string][]ref{}, admitted: map[string]int{}, clean: map[string]bool{}, ids: map[string][]string{}, releases: map[string]relInfo{},
		reports: map[string]*wire.UpdateReport{}, ended: map[string]time.Time{}}
}

// Kick asks the driver to look now: a check-in, a job's result, an
// operation.
func (r *Room) Kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run drives until ctx ends: every Config.Every, and when kicked, but
// never twice within Config.Every. A big rollout's check-ins and job
// results kick the room hundreds of times a second; those kicks are
// coalesced into the next tick, which sees them all.
func (r *Room) Run(ctx context.Context) {
	t := time.NewTimer(r.cfg.Every)
	defer t.Stop()
	var last time.Time // when the last tick began, by the real clock
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
			if !last.IsZero() && !sleep(ctx, r.cfg.Every-time.Since(last)) {
				return
			}
		}
		last = time.Now()
		r.tick()
		t.Reset(r.cfg.Every) // since Go 1.23, Reset drops a firing not yet received
	}
}

// sleep waits d (nothing when d is not positive) and reports false when
// ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// changed tells alerts to look again.
func (r *Room) changed() {
	if r.deps.Changed != nil {
		r.deps.Changed()
	}
}

// suspectFor is how long a home broker may be suspect in gossip before
// another broker takes its rollouts over: a suspect broker is often only
// slow, and two drivers, though safe (job IDs are derived), would each
// pause and finish the rollout.
const suspectFor = 30 * time.Second

// drives reports whether this broker drives rollout rec now: its home,
// or, while its home is dead (or suspect for longer than suspectFor),
// the alive broker with the smallest name.
func (r *Room) drives(rec *store.RolloutRecord) bool {
	if r.deps.Members == nil || rec.Home == r.cfg.Name {
		return true
	}
	local := r.deps.Members.LocalName()
	smallest := local
	now := r.cfg.Now()
	for _, m := range r.deps.Members.Members() {
		if m.Name == rec.Home && (m.State == cluster.StateAlive || m.State == cluster.StateSuspect && now.Sub(m.Since) <= suspectFor) {
			return false
		}
		if m.State == cluster.StateAlive {
			smallest = min(smallest, m.Name)
		}
	}
	return smallest == local
}
