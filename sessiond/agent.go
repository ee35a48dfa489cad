package sessiond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/channel"
	"github.com/readymesh/readymesh/sessiond/collect"
	"github.com/readymesh/readymesh/sessiond/lastrun"
	"github.com/readymesh/readymesh/sessiond/localdb"
	"github.com/readymesh/readymesh/sessiond/sysevents"
	"github.com/readymesh/readymesh/sessiond/update"
)

// Agent is a running agent.
type Agent struct {
	// Immutable after New.
	cfg        Config
	log        *slog.Logger
	key        *identity.Key
	db         *localdb.DB
	brokers    *brokerSet
	host       host.Host
	collectors []collect.Collector
	sessions   *mesh.Listener
	channels   *channel.Server
	consent    *consent
	demand     chan chan checkInResult // control socket → check-in loop
	statusKick chan struct{}           // session changes → status upkeep

	// enrolment is read from the local database in New. Only its Brokers
	// change afterwards, and only on the bridge goroutine (learnBrokers),
	// the one goroutine that reads them. The release key is read from
	// the database when an update needs it, since the control channel
	// and a committed update change it (localdb.EditEnrolment).
	enrolment localdb.Enrolment

	// spread and helloAt are the reconnect window the broker gave in its
	// last presence hello and when that hello came; udpBlocked is since
	// when bridges fall back from QUIC (zero: they do not). Only the
	// bridge goroutine uses them.
	spread     time.Duration
	helloAt    time.Time
	udpBlocked time.Time

	// quietKick asks for the quiet-mode decision again, and modeKick
	// tells the check-in loop that quiet mode began or ended.
	quietKick chan struct{}
	modeKick  chan struct{}

	// Set at the start of Run from how the previous run ended (package
	// lastrun): unclean says it did not end cleanly, so the first
	// check-in reports it; lastUnclean is the newest unclean end, which
	// every snapshot reports; run records this run (nil unless
	// Config.RecordRun).
	unclean     bool
	lastUnclean *wire.RunEnd
	run         *lastrun.Run

	jobs    runningJobs // queued jobs running now; has its own lock
	history history     // sessions seen open; has its own lock

	// updating is set while an update job installs and from when it
	// staged its release on: one update at a time.
	updating atomic.Bool

	// ackedSeq is the newest acknowledged check-in sequence, as in the
	// local database, kept here so heartbeats do not read it each time.
	ackedSeq atomic.Uint64

	// policyMu orders learnPolicy's writes to memory and the database;
	// it is taken before mu, never inside it.
	policyMu sync.Mutex

	// mu guards all following fields: the bridge's state, and the STUN
	// server the session upkeep refreshes the reflexive address with.
	mu        sync.Mutex
	up        bool           // the bridge is up now
	upChanged chan struct{}  // closed and replaced whenever up changes
	lastErr   string         // why the bridge went down last
	connected peer.ID        // the broker holding the bridge while up
	stun      netip.AddrPort // the broker's STUN server, learned from offers
	stopRun   func()         // ends Run; nil outside it
	staged    *update.Trial  // the update handed over to (see Staged)

	// hold is why the bridge is held down (asleep, shutting down,
	// quiet), holdChanged is closed and replaced when it changes, and
	// returned is what the next hello says of the time away (away.go).
	hold        holdState
	holdChanged chan struct{}
	returned    *wire.Returned
	// shutdown is the notice of a shutdown logind announced (at
	// shutdownAt) and did not cancel: a stop that follows within
	// shutdownMemory is that shutdown.
	shutdown   *wire.Leaving
	shutdownAt time.Time
	// policy is the fleet's policy for this agent and metered whether
	// the connection is metered now (quiet.go).
	policy  wire.AgentPolicy
	metered bool
	// udpBlockedAt is the bridge goroutine's udpBlocked, for the status.
	udpBlockedAt *time.Time
}

// Info is what agent.json holds.
type Info struct {
	PeerID string `json:"peer_id"`
	Name   string `json:"name"`
	Client string `json:"client"`
}

// New opens the agent's state. The agent must be enrolled.
func New(cfg Config) (*Agent, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("sessiond: Config.StateDir is empty")
	}
	cfg.setDefaults()
	a := &Agent{cfg: cfg, log: cfg.Logger, demand: make(chan chan checkInResult), upChanged: make(chan struct{}),
		statusKick: make(chan struct{}, 1), holdChanged: make(chan struct{}),
		quietKick: make(chan struct{}, 1), modeKick: make(chan struct{}, 1)}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var err error
	if a.key, err = identity.Load(filepath.Join(cfg.StateDir, KeyFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sessiond: %s is not enrolled; run sessiond enroll first", cfg.StateDir)
		}
		return nil, fmt.Errorf("sessiond: %w", err)
	}
	if a.db, err = localdb.Open(filepath.Join(cfg.StateDir, DBFile)); err != nil {
		return nil, fmt.Errorf("sessiond: %w", err)
	}
	if err := a.init(); err != nil {
		a.db.Close()
		return nil, err
	}
	return a, nil
}

func (a *Agent) init() error {
	var err error
	if a.enrolment, err = a.db.Enrolment(); err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	if a.enrolment.MachineID != a.key.ID.String() {
		return fmt.Errorf("sessiond: the key in %s is %s, but the enrolment is for %s", a.cfg.StateDir, a.key.ID, a.enrolment.MachineID)
	}
	if _, err = bridge.AddrInfo(a.enrolment.Broker); err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	a.brokers = newBrokerSet(a.enrolment.Broker, a.enrolment.Brokers)
	if last, ok, err := a.db.Last(); err != nil {
		return fmt.Errorf("sessiond: %w", err)
	} else if ok {
		a.ackedSeq.Store(last.Seq)
	}
	away, err := a.db.Away()
	if err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	a.policy = away.Policy
	if err := a.loadConsent(); err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	if a.collectors, err = a.newCollectors(); err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	if a.host, err = bridge.NewHost(bridge.HostConfig{Key: a.key, Net: a.cfg.Net}); err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	if err := a.startSessions(); err != nil {
		a.host.Close()
		return err
	}
	return nil
}

func (a *Agent) newCollectors() ([]collect.Collector, error) {
	ccfg := collect.Config{AgentVersion: buildinfo.Version, AptTimeout: a.cfg.AptTimeout, Logger: a.log,
		Runtime: wire.RuntimeConfig{CheckInIntervalSec: int(a.cfg.CheckInInterval / time.Second),
			ConsentPolicy: a.cfg.ConsentPolicy},
		Approval: wire.Approval{Required: a.cfg.ConsentPolicy != wire.ConsentNever}}
	if a.cfg.Inventory == "" {
		return collect.Host(ccfg), nil
	}
	fx, err := collect.Fixture(a.cfg.Inventory)
	if err != nil {
		return nil, err
	}
	return []collect.Collector{collect.Agent(ccfg), fx}, nil
}

// Run runs the agent until ctx is done, or until an update job staged a
// release (then Staged returns it). On return the presence stream has
// been closed cleanly, so the broker shows the machine offline at once,
// and the local database is closed.
func (a *Agent) Run(ctx context.Context) error {
	defer a.close()
	info := Info{PeerID: a.key.ID.String(), Name: a.enrolment.Name, Client: a.enrolment.Client}
	if err := writeJSON(filepath.Join(a.cfg.StateDir, InfoFile), info); err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.mu.Lock()
	a.stopRun = cancel
	a.mu.Unlock()
	a.startRun()
	var sys *sysevents.Watcher // nil: the machine is not watched
	if a.cfg.SystemBus != NoSystemBus {
		var err error
		if sys, err = sysevents.Start(ctx, sysevents.Config{Bus: a.cfg.SystemBus, Logger: a.log}); err != nil {
			return fmt.Errorf("sessiond: %w", err)
		}
		defer sys.Close()
		a.setMetered(sys.Metered())
	}
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){a.runBridge, a.runCheckIns, a.runSessionUpkeep,
		a.runControl, func(ctx context.Context) { a.runSystem(ctx, sys) }} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	a.log.Info("agent running", "machine", a.enrolment.Name, "client", a.enrolment.Client,
		"id", a.key.ID, "broker", a.enrolment.Broker.PeerID, "brokers_known", len(a.brokers.all()))
	<-ctx.Done()
	// Order: the control channel and both loops stop on ctx; the bridge
	// loop closes the presence stream cleanly before it returns. Only then
	// is the host closed (in close).
	wg.Wait()
	a.runStopped(a.stopNotice(ctx).Reason)
	if a.run != nil {
		a.run.Close()
	}
	return nil
}

func (a *Agent) close() {
	a.sessions.Close()
	a.host.Close()
	a.db.Close()
}

// setUp records whether the bridge is up (to broker, when up) and wakes
// waiters.
func (a *Agent) setUp(up bool, broker peer.ID, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.up == up && a.connected == broker {
		return
	}
	a.up, a.connected, a.lastErr = up, broker, why
	close(a.upChanged)
	a.upChanged = make(chan struct{})
}

// waitUp blocks until the bridge is up or ctx is done, and returns the
// broker holding it.
func (a *Agent) waitUp(ctx context.Context) (peer.ID, error) {
	for {
		up, broker, changed := a.bridgeState()
		if up {
			return broker, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-changed:
		}
	}
}

func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
