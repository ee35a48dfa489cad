package lastrun

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// File names inside Config.Dir.
const (
	// MarkerFile is the JSON marker of the current run.
	MarkerFile = "lastrun.json"
	// CrashFile receives the runtime's crash output for the current run.
	CrashFile = "crash.log"
	// PreviousCrashFile keeps the previous run's crash output, whole, for
	// people: Open moves a non-empty CrashFile there.
	PreviousCrashFile = "crash.previous.log"
	// ExitStatusFile is written by the service manager after the agent's
	// process ended: one line such as "killed by signal KILL" or "exited
	// with status 2". Open reads it and deletes it.
	ExitStatusFile = "exit-status"
)

// NoExitRecorded is the detail of an unclean end that left no trace: no
// crash output and no exit status.
const NoExitRecorded = "no exit recorded: killed, or the machine lost power"

// Config configures Open.
type Config struct {
	// Dir is the agent's state directory. It must not be empty; it is
	// created with mode 0700 when missing.
	Dir string
	// Every is how often Alive rewrites the marker. Shorter makes the
	// time an unclean end is reported at more exact, at the cost of a
	// small file write each time. Zero means 1 minute.
	Every time.Duration
	// BootTime reports when the machine booted. Nil means the package's
	// BootTime; tests give a fake one.
	BootTime func() (time.Time, error)
	// Now is the clock Open and Stopped read. Nil means time.Now.
	Now func() time.Time
	// Logger receives what could not be read or written. Nil means
	// discard.
	Logger *slog.Logger
}

// Previous is what Open found of the previous run.
type Previous struct {
	// Clean is set when the previous run stopped cleanly (Stopped was
	// called and no crash followed).
	Clean bool
	// Reason is the reason a clean stop gave: a wire.Away reason
	// ("stopped", "shutdown", "asleep"...).
	Reason string
	// Unclean is set when the previous run ended without a clean stop:
	// when it was last known alive (or when it crashed, when the crash
	// was recorded), and how it ended.
	Unclean *wire.RunEnd
	// LastUnclean is the newest unclean end recorded in Dir: Unclean when
	// the previous run ended uncleanly, else the one an earlier run
	// recorded; nil when none. Open carries it into the new marker, so
	// the agent can report it in every snapshot
	// (wire.Snapshot.LastUncleanEnd) without keeping it elsewhere.
	LastUnclean *wire.RunEnd
	// Booted is the machine's boot time now; zero when it could not be
	// read.
	Booted time.Time
	// Rebooted is set when the machine booted after the previous run was
	// last alive.
	Rebooted bool
	// First is set when no previous run is recorded.
	First bool
	// LastAlive is when the previous run was last known alive: its last
	// marker refresh, or its clean stop.
	LastAlive time.Time
}

// Run records the current run. Its methods are safe for concurrent use.
// A process has one Run at a time: the runtime has one crash output.
type Run struct {
	// Immutable after Open.
	dir   string
	every time.Duration
	now   func() time.Time
	log   *slog.Logger

	// mu guards all following fields.
	mu      sync.Mutex
	m       marker
	written time.Time // when Alive last wrote the marker (monotonic)
	failing bool      // the last write failed: log the next failure quietly
	closed  bool
}

// Open reads what the previous run left in cfg.Dir and starts recording
// this one: it writes a fresh marker and points the runtime's crash
// output at CrashFile. It fails only when the marker or the crash file
// cannot be written; what cannot be read of the previous run is logged
// and left out.
func Open(cfg Config) (*Run, Previous, error) {
	if cfg.Dir == "" {
		return nil, Previous{}, errors.New("lastrun: no state directory")
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, Previous{}, fmt.Errorf("lastrun: %w", err)
	}
	now := cfg.Now()
	prev := readPrevious(cfg, now)
	r := &Run{dir: cfg.Dir, every: cfg.Every, now: cfg.Now, log: cfg.Logger,
		m: marker{Started: now.UTC(), Alive: now.UTC(), PID: os.Getpid(), LastUnclean: prev.LastUnclean}}
	if err := r.writeLocked(true); err != nil {
		return nil, prev, fmt.Errorf("lastrun: write marker: %w", err)
	}
	r.written = now
	if err := startCrashOutput(cfg.Dir); err != nil {
		return nil, prev, fmt.Errorf("lastrun: crash output: %w", err)
	}
	return r, prev, nil
}

func (c Config) withDefaults() Config {
	if c.Every <= 0 {
		c.Every = time.Minute
	}
	if c.BootTime == nil {
		c.BootTime = BootTime
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Alive refreshes the marker when Every has passed since it was last
// written, so it is cheap to call from any ticker. It is a hint: it is
// not fsynced. After Stopped it does nothing until Resumed.
func (r *Run) Alive(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.m.Stopped {
		return
	}
	if d := now.Sub(r.written); d >= 0 && d < r.every {
		return
	}
	r.m.Alive = now.UTC()
	r.written = now
	r.report("refresh", r.writeLocked(false))
}

// Stopped records a clean stop with its reason (a wire.Away reason) and
// fsyncs it: it must survive the shutdown that follows.
func (r *Run) Stopped(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.m.Stopped, r.m.Reason, r.m.Alive = true, reason, r.now().UTC()
	r.report("record stop", r.writeLocked(true))
}

// Resumed undoes Stopped for a run that went on after all (the machine
// slept and woke, a shutdown was cancelled): the marker says the run is
// alive again, and Alive refreshes it again.
func (r *Run) Resumed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || !r.m.Stopped {
		return
	}
	now := r.now()
	r.m.Stopped, r.m.Reason, r.m.Alive = false, "", now.UTC()
	r.written = now
	r.report("record resume", r.writeLocked(false))
}

// Close stops recording: the runtime's crash output goes back to
// standard error alone. The marker stays as it is: a Close without
// Stopped is an unclean end for the next Open. Close is idempotent.
func (r *Run) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	if err := debug.SetCrashOutput(nil, debug.CrashOptions{}); err != nil {
		r.log.Warn("lastrun: reset crash output", "err", err)
	}
}

// report logs a failed write: the first of a series at Warn, the rest at
// Debug, since a full disk fails every minute.
func (r *Run) report(what string, err error) {
	switch {
	case err == nil:
		r.failing = false
	case r.failing:
		r.log.Debug("lastrun: "+what, "err", err)
	default:
		r.failing = true
		r.log.Warn("lastrun: "+what, "dir", r.dir, "err", err)
	}
}

// writeLocked writes the marker; sync makes it durable.
func (r *Run) writeLocked(sync bool) error {
	return writeMarker(filepath.Join(r.dir, MarkerFile), &r.m, sync)
}
