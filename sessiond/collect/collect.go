package collect

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// A Collector fills its part of a snapshot. It returns an error when it could
// not; whatever it filled before failing is kept.
type Collector interface {
	// Name identifies the collector in the snapshot's collector errors.
	Name() string
	Collect(ctx context.Context, s *wire.Snapshot) error
}

// DefaultAptTimeout bounds a simulated upgrade when Config.AptTimeout is zero.
const DefaultAptTimeout = 60 * time.Second

// Config configures the collectors and the heartbeat signals. The zero
// value is usable; each field says what zero means.
type Config struct {
	// AgentVersion is reported as the snapshot's agent version. The broker
	// refuses a snapshot without one, so the agent collector reports an
	// error when it is empty.
	AgentVersion string
	// Runtime is the agent's configuration as it runs, copied into every
	// snapshot.
	Runtime wire.RuntimeConfig
	// Approval is the machine's consent posture, copied into every snapshot.
	Approval wire.Approval
	// AptTimeout bounds one slow collector run: a simulated upgrade
	// (apt-get, dnf or yum), a Windows Update search, softwareupdate or
	// system_profiler on macOS. Zero means 60 seconds. Longer lets a slow
	// disk or update service finish; shorter keeps a wedged one from
	// delaying the check-in, which is sent with pending updates unknown
	// when the bound hits.
	AptTimeout time.Duration
	// Root is the filesystem root the Linux collectors read below:
	// etc/os-release, proc/..., var/run/utmp, and the dpkg or rpm database.
	// Zero means "/". Windows and macOS read their registry and commands
	// and ignore it.
	// The simulated upgrade cannot be pointed at another root, so with a
	// Root other than "/" the updates collector reports an error instead of
	// describing the host.
	Root string
	// Logger receives debug logs about collection. Nil discards them.
	Logger *slog.Logger
}

func (c Config) root() string {
	if c.Root == "" {
		return "/"
	}
	return c.Root
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c.Logger
}

func (c Config) aptTimeout() time.Duration {
	if c.AptTimeout <= 0 {
		return DefaultAptTimeout
	}
	return c.AptTimeout
}

// machine builds the view of the machine the collectors share.
func (c Config) machine() machine {
	return machine{
		root:       c.root(),
		lookPath:   exec.LookPath,
		log:        c.logger(),
		aptTimeout: c.aptTimeout(),
	}
}

// Linux returns the collectors for a Linux machine: agent, os, hostname,
// boot_id, packages, updates and addresses, in that order.
func Linux(cfg Config) []Collector {
	m := cfg.machine()
	return []Collector{
		Agent(cfg),
		newFunc("os", m.collectOS),
		newFunc("hostname", m.collectHostname),
		newFunc("boot_id", m.collectBootID),
		newFunc("packages", m.collectPackages),
		newFunc("updates", m.collectUpdates),
		newFunc("addresses", m.collectAddresses),
	}
}

// Collect runs every collector in order on a new snapshot, records each
// failure (or panic) in the snapshot's collector errors and keeps going. It
// sets CollectedAt to now.
func Collect(ctx context.Context, cs []Collector, now time.Time) *wire.Snapshot {
	s := &wire.Snapshot{}
	for _, c := range cs {
		if err := runOne(ctx, c, s); err != nil {
			s.CollectorErrs = append(s.CollectorErrs, wire.CollectorError{
				Collector: c.Name(),
				Error:     err.Error(),
			})
		}
	}
	s.CollectedAt = now
	return s
}

// runOne runs c, turning a panic into an error: one broken collector must
// not take the agent's check-in down with it.
func runOne(ctx context.Context, c Collector, s *wire.Snapshot) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.Collect(ctx, s)
}

// funcCollector adapts a function to Collector.
type funcCollector struct {
	name string
	fn   func(context.Context, *wire.Snapshot) error
}

var _ Collector = funcCollector{}

func newFunc(name string, fn func(context.Context, *wire.Snapshot) error) Collector {
	return funcCollector{name: name, fn: fn}
}

func (f funcCollector) Name() string { return f.name }

func (f funcCollector) Collect(ctx context.Context, s *wire.Snapshot) error {
	return f.fn(ctx, s)
}
