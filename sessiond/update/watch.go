package update

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Config configures the watchdog.
type Config struct {
	// StateDir is the agent's state directory (the trial's files are in
	// Dir(StateDir)). It must not be empty.
	StateDir string
	// Args are the child's arguments after its program name: the
	// watchdog's own `run` command line, so the new binary runs as the
	// old one did.
	Args []string
	// Env is the child's environment, to which TrialEnv=1 is added. Nil
	// means this process's.
	Env []string
	// Stdout and Stderr receive the child's output. Nil means discard.
	Stdout, Stderr io.Writer
	// MaxStarts is how many times a child that exits before it is
	// healthy is started in all. Zero means 3.
	MaxStarts int
	// RestartDelay is the pause before starting a child again. Zero
	// means 2 s.
	RestartDelay time.Duration
	// StopGrace is how long a child has to stop once its stdin is
	// closed before it is killed. Zero means 20 s, within the 30 s the
	// Windows service manager waits for a stop and systemd's 90 s.
	StopGrace time.Duration
	// Poll is how often the healthy marker is looked for. Zero means
	// 250 ms.
	Poll time.Duration
	// Logger receives the trial's progress. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Env == nil {
		c.Env = os.Environ()
	}
	if c.MaxStarts <= 0 {
		c.MaxStarts = 3
	}
	if c.RestartDelay <= 0 {
		c.RestartDelay = 2 * time.Second
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 20 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// End is how a trial ended for the watchdog.
type End int

const (
	// Interrupted: the watchdog was asked to stop during the trial. The
	// trial state stays; the next start of the agent resumes it.
	Interrupted End = iota
	// Committed: the new binary is EXE now. The watchdog relayed stop
	// to it until it exited (Result.Exit).
	Committed
	// RolledBack: EXE.new is gone and EXE was never touched. The caller
	// runs the agent itself; its first check-in reports Result.Report.
	RolledBack
)

func (e End) String() string {
	return [...]string{"interrupted", "committed", "rolled back"}[e]
}

// Result is how Run ended.
type Result struct {
	End    End
	Report wire.UpdateReport // Committed and RolledBack
	// Exit is how the committed child ended (nil: status 0) and
	// ExitCode its status (-1 when killed).
	Exit     error
	ExitCode int
}

// watch is one run of the watchdog over a trial.
type watch struct {
	cfg Config
	t   *Trial
	p   Paths
	log *slog.Logger
}

// Run runs trial t to its end: it starts the new binary as a child on
// trial and commits it once it is healthy, or rolls back when it exits
// MaxStarts times before that or the health window passes. It resumes a
// trial an earlier watchdog left (counting its starts), and finishes a
// commit or rollback that one left half done. After a commit it stays as
// the child's parent until the child exits or ctx ends (then it stops the
// child), so the caller exits when the agent does.
func Run(ctx context.Context, cfg Config, t *Trial) Result {
	cfg.setDefaults()
	w := &watch{cfg: cfg, t: t, p: PathsFor(t.Exe), log: cfg.Logger.With("update", t.To, "trial", t.ID)}
	switch {
	case t.Phase == PhaseRollingBack:
		return w.rollback(t.Detail)
	case t.Phase == PhaseCommitting || healthy(cfg.StateDir, t):
		// The child became healthy but this watchdog's predecessor did
		// not finish: finish, then run the committed binary.
		if err := w.commit(); err != nil {
			return w.rollback(err.Error())
		}
		return w.relayNew(ctx)
	}
	return w.trial(ctx)
}

// trial starts children until one is healthy, the starts run out, the
// window passes or ctx ends. Before every start it checks EXE.new
// against the release, as it may have changed on disk since it was
// staged or last started.
func (w *watch) trial(ctx context.Context) Result {
	for {
		if w.t.Starts >= w.cfg.MaxStarts {
			return w.rollback(fmt.Sprintf("%s %s at start%s", w.t.LastExit, times(w.t.Starts), lastLine(w.t.LastLine)))
		}
		if !w.cfg.Now().Before(w.t.Deadline) {
			return w.rollback(w.noCheckIn())
		}
		if err := checkFile(w.p.New, wire.ReleaseBinary{SHA256: w.t.SHA256, Size: w.t.Size}); err != nil {
			return w.rollback("the staged binary is not the release's: " + err.Error())
		}
		c, err := w.start()
		if err != nil {
			w.log.Error("update: could not start the new binary", "err", err)
		} else if r, done := w.follow(ctx, c); done {
			return r
		}
		if sleep(ctx, w.cfg.RestartDelay) != nil {
			return Result{End: Interrupted}
		}
	}
}

// start counts and records a start, then starts the child on trial.
func (w *watch) start() (*child, error) {
	w.t.Starts++
	w.t.LastExit, w.t.LastLine = "was stopped with its watchdog", ""
	if err := w.t.Save(w.cfg.StateDir); err != nil {
		// Never run a start that a restarted watchdog could not count.
		w.t.LastExit = "was not started: the trial state could not be written (" + err.Error() + ")"
		return nil, err
	}
	removeIfExists(filepath.Join(Dir(w.cfg.StateDir), HealthyFile))
	w.log.Info("update: starting the new binary on trial", "start", w.t.Starts, "of", w.cfg.MaxStarts,
		"deadline", w.t.Deadline.Format(time.RFC3339))
	c, err := startChild(w.p.New, w.cfg.Args, w.env(), w.cfg.Stdout, w.cfg.Stderr)
	if err != nil {
		w.t.LastExit = "could not be started (" + err.Error() + ")"
		w.t.Save(w.cfg.StateDir)
	}
	return c, err
}

// follow watches a started child. done is false when it exited early
// and may be started again.
func (w *watch) follow(ctx context.Context, c *child) (r Result, done bool) {
	tick := time.NewTicker(w.cfg.Poll)
	defer tick.Stop()
	window := time.NewTimer(w.t.Deadline.Sub(w.cfg.Now()))
	defer window.Stop()
	for {
		select {
		case <-c.done:
			return w.exited(ctx, c)
		case <-tick.C:
			if healthy(w.cfg.StateDir, w.t) {
				return w.healthy(ctx, c), true
			}
			continue
		case <-window.C:
			w.log.Warn("update: the health window passed; stopping the new binary")
		case <-ctx.Done():
			w.log.Info("update: stopping during the trial; the next start resumes it")
		}
		c.stop(w.cfg.StopGrace)
		if healthy(w.cfg.StateDir, w.t) {
			return w.healthy(ctx, c), true
		}
		w.t.LastLine = c.tail.last()
		if ctx.Err() != nil {
			return w.interrupted(), true
		}
		return w.rollback(w.noCheckIn()), true
	}
}

// interrupted gives back the start of a child stopped because the
// watchdog was asked to stop (a service stop, a reboot): that start did
// not fail, and three reboots during the window must not roll back a good
// release. A watchdog that dies instead keeps the start counted.
func (w *watch) interrupted() Result {
	w.t.Starts--
	w.t.LastExit = "was stopped with its watchdog"
	if err := w.t.Save(w.cfg.StateDir); err != nil {
		w.log.Warn("update: could not record the stop", "err", err)
	}
	return Result{End: Interrupted}
}

// exited handles a child that exited by itself: healthy first (it may
// have failed after it checked in), else it is recorded and may be
// started again.
func (w *watch) exited(ctx context.Context, c *child) (Result, bool) {
	if healthy(w.cfg.StateDir, w.t) {
		return w.healthy(ctx, c), true
	}
	w.t.LastExit, w.t.LastLine = c.describe(), c.tail.last()
	w.log.Warn("update: the new binary exited before it was healthy", "how", w.t.LastExit, "last_line", w.t.LastLine,
		"start", w.t.Starts)
	if err := w.t.Save(w.cfg.StateDir); err != nil {
		w.log.Error("update: could not record the exit", "err", err)
	}
	return Result{}, false
}

// healthy commits the healthy child and relays to it; a commit that
// fails stops it and rolls back.
func (w *watch) healthy(ctx context.Context, c *child) Result {
	if err := w.commit(); err != nil {
		c.stop(w.cfg.StopGrace)
		return w.rollback(err.Error())
	}
	return w.relay(ctx, c)
}

// commit makes the new binary EXE and records the outcome, which the
// child has already reported (it marks itself healthy only then).
func (w *watch) commit() error {
	w.t.Phase = PhaseCommitting
	if err := w.t.Save(w.cfg.StateDir); err != nil {
		return fmt.Errorf("could not record the commit: %w", err)
	}
	if err := w.swap(); err != nil {
		return err
	}
	rep := w.t.Report(wire.ReasonUpdated, "", w.cfg.Now())
	if err := SaveOutcome(w.cfg.StateDir, Outcome{Report: rep, Reported: true}); err != nil {
		w.log.Warn("update: could not record the outcome", "err", err)
	}
	if err := RemoveTrial(w.cfg.StateDir); err != nil {
		w.log.Warn("update: could not remove the trial state", "err", err)
	}
	w.log.Info("update: committed; the previous binary is kept", "from", w.t.From, "to", w.t.To, "previous", w.p.Previous)
	return nil
}

// swap puts EXE.new in place and checks the result: the swap is done
// only when EXE is the release's binary (a directory sync that failed
// after the renames does not undo them, and a swap that another process
// undid is not done).
func (w *watch) swap() error {
	err := swap(w.p)
	if cerr := checkFile(w.p.Exe, wire.ReleaseBinary{SHA256: w.t.SHA256, Size: w.t.Size}); cerr != nil {
		if err == nil {
			err = fmt.Errorf("%s is not the release's binary after the swap: %w", filepath.Base(w.p.Exe), cerr)
		}
		return fmt.Errorf("could not put it in place: %w", err)
	}
	if err != nil {
		w.log.Warn("update: the swap is done but reported an error", "err", err)
	}
	return nil
}

// relay waits for the committed child to exit, stopping it when ctx ends.
func (w *watch) relay(ctx context.Context, c *child) Result {
	select {
	case <-c.done:
	case <-ctx.Done():
		c.stop(w.cfg.StopGrace)
	}
	return Result{End: Committed, Report: w.t.Report(wire.ReasonUpdated, "", w.cfg.Now()), Exit: c.err, ExitCode: c.exitCode()}
}

// relayNew starts the committed binary (EXE) and relays to it.
func (w *watch) relayNew(ctx context.Context) Result {
	c, err := startChild(w.p.Exe, w.cfg.Args, w.env(), w.cfg.Stdout, w.cfg.Stderr)
	if err != nil {
		return Result{End: Committed, Report: w.t.Report(wire.ReasonUpdated, "", w.cfg.Now()), Exit: err, ExitCode: -1}
	}
	return w.relay(ctx, c)
}

// rollback deletes EXE.new and records why, for the agent's first
// check-in. It marks the trial rolling back first, so a watchdog that
// dies in the middle is followed by one that finishes with the same
// reason.
func (w *watch) rollback(detail string) Result {
	w.t.Phase, w.t.Detail = PhaseRollingBack, detail
	if err := w.t.Save(w.cfg.StateDir); err != nil {
		w.log.Warn("update: could not record the rollback", "err", err)
	}
	// A commit cut short may have left EXE missing: put it back first,
	// and never delete EXE.new while EXE is not there.
	if err := RestoreExe(w.p); err != nil {
		w.log.Error("update: the executable is missing and could not be restored; keeping the staged binary", "err", err)
	} else if err := removeIfExists(w.p.New); err != nil {
		w.log.Error("update: could not delete the staged binary; it is never run", "err", err)
	}
	rep := w.t.Report(wire.ReasonRolledBack, detail, w.cfg.Now())
	if err := SaveOutcome(w.cfg.StateDir, Outcome{Report: rep}); err != nil {
		w.log.Error("update: could not record the outcome", "err", err)
	}
	if err := RemoveTrial(w.cfg.StateDir); err != nil {
		w.log.Warn("update: could not remove the trial state", "err", err)
	}
	w.log.Error(fmt.Sprintf("update: rolled back from %s: %s", w.t.To, detail), "running", w.t.From)
	return Result{End: RolledBack, Report: rep}
}

// env is the child's environment: the configured one, on trial, with
// the executable it replaces.
func (w *watch) env() []string {
	env := make([]string, 0, len(w.cfg.Env)+2)
	for _, kv := range w.cfg.Env {
		if !strings.HasPrefix(kv, TrialEnv+"=") && !strings.HasPrefix(kv, ExeEnv+"=") {
			env = append(env, kv)
		}
	}
	return append(env, TrialEnv+"=1", ExeEnv+"="+w.t.Exe)
}

// noCheckIn is the reason of a rollback after the health window.
func (w *watch) noCheckIn() string {
	return fmt.Sprintf("no check-in within %s%s", w.t.Window(), lastLine(w.t.LastLine))
}

// lastLine is the " (last line: …)" part of a reason, or "".
func lastLine(s string) string {
	if s == "" {
		return ""
	}
	return " (last line: " + s + ")"
}

// times says n times in words, as a reason reads best.
func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	case 3:
		return "three times"
	}
	return fmt.Sprintf("%d times", n)
}
