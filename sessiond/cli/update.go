package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond"
	"github.com/readymesh/readymesh/sessiond/update"
)

// runUpdating runs the agent and the updates it stages (package update).
// When the agent hands over to a staged release, this process becomes the
// new binary's watchdog; if the release is rolled back, it runs the agent
// again itself, as the binary it is. A start that finds a trial an earlier
// watchdog left resumes it first. Such a start holds the update lock of
// the state directory for its whole life, so a second sessiond run on it
// is refused. A child of a watchdog (cfg.Trial, from update.FromWatchdog)
// never resumes a trial or takes the lock, since its parent does, and
// stops when its stdin ends; if it stages an update itself, it watches
// that one nested in its own watchdog. The children's stderr goes to
// logTo, this process's log.
func (e *env) runUpdating(ctx context.Context, cfg sessiond.Config, args []string, logTo io.Writer) error {
	wd := update.Config{StateDir: cfg.StateDir, Args: args, Stdout: e.stdout, Stderr: logTo, Logger: cfg.Logger}
	if cfg.Trial {
		var cancel context.CancelFunc
		ctx, cancel = update.StopOnEOF(ctx, os.Stdin)
		defer cancel()
	} else {
		if _, err := os.Stat(cfg.StateDir); err == nil { // else New says what is wrong
			lock, err := update.TakeLock(cfg.StateDir, 10*time.Second)
			if err != nil {
				return fmt.Errorf("sessiond run: %w", err)
			}
			defer lock.Release()
		}
		// A child this state directory's previous watchdog ran stops
		// when that watchdog's end closes its stdin; it may hold the
		// database a moment longer. New says so if it is still held.
		sessiond.WaitUnlocked(ctx, cfg.StateDir, 10*time.Second)
		if done, err := resumeTrial(ctx, cfg, wd); done {
			return err
		}
	}
	cfg.RecordRun = true // the next run tells how this one ended
	for {
		a, err := sessiond.New(cfg)
		if err != nil {
			return err
		}
		err = a.Run(ctx)
		t := a.Staged()
		if t == nil || ctx.Err() != nil {
			// Stopping: a staged trial starts at the next start.
			return err
		}
		if r := update.Run(ctx, wd, t); r.End != update.RolledBack {
			return watchdogExit(r)
		}
	}
}

// resumeTrial runs the trial an earlier watchdog left, if any. done is
// false when the agent should run here: there was none, or it was rolled
// back.
func resumeTrial(ctx context.Context, cfg sessiond.Config, wd update.Config) (done bool, err error) {
	t, err := update.LoadTrial(cfg.StateDir)
	if err != nil {
		// Without its state the trial cannot go on; EXE was never
		// touched, so drop it and run the binary that is here.
		cfg.Logger.Error("update: the trial state cannot be read; dropping it", "err", err)
		update.RemoveTrial(cfg.StateDir)
		return false, nil
	}
	if t == nil {
		return false, nil
	}
	cfg.Logger.Info("update: resuming the trial an earlier start left", "to", t.To, "starts", t.Starts)
	r := update.Run(ctx, wd, t)
	if r.End == update.RolledBack {
		return false, nil
	}
	return true, watchdogExit(r)
}

// watchdogExit is what sessiond run returns once the watchdog is done: a
// committed child's exit status becomes this process's (the child said
// why on the stderr it shares).
func watchdogExit(r update.Result) error {
	var ee interface{ ExitCode() int }
	switch {
	case r.End != update.Committed || r.Exit == nil:
		return nil
	case errors.As(r.Exit, &ee) && r.ExitCode > 0:
		return &ExitError{Code: r.ExitCode}
	}
	return fmt.Errorf("the updated agent: %w", r.Exit)
}

// trustReleaseKey pins a release key in the agent of --state, running or
// not.
func (e *env) trustReleaseKey(name string, args []string) error {
	c := e.control(name)
	replace := c.fs.Bool("replace", false, "replace a different release key pinned before")
	if err := c.parse(args); err != nil {
		return err
	}
	if c.fs.NArg() != 1 {
		return &usageError{msg: "trust-release-key takes one KEY: the minisign public key (RW…) or its .pub file"}
	}
	key := c.fs.Arg(0)
	if b, err := os.ReadFile(key); err == nil {
		key = string(b)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	ch, err := sessiond.TrustReleaseKey(ctx, *c.dir, key, *replace)
	if err != nil {
		return err
	}
	switch {
	case !ch.Changed:
		fmt.Fprintf(e.stdout, "release key %s was pinned already\n", ch.KeyID)
	case ch.PreviousID != "":
		fmt.Fprintf(e.stdout, "release key %s pinned, replacing %s: updates must be signed with it\n", ch.KeyID, ch.PreviousID)
	default:
		fmt.Fprintf(e.stdout, "release key %s pinned: updates must be signed with it\n", ch.KeyID)
	}
	return nil
}

// printUpdateStatus prints the update part of a status, when the agent
// gave one.
func (e *env) printUpdateStatus(st *sessiond.Status) {
	if st.Version == "" {
		return // an agent older than updates
	}
	key := "release key " + st.ReleaseKeyID
	if st.ReleaseKeyID == "" {
		key = "no release key pinned: updates are refused"
	}
	fmt.Fprintf(e.stdout, "agent     %s, %s\n", st.Version, key)
	if t := st.Trial; t != nil {
		fmt.Fprintf(e.stdout, "update    on trial: %s → %s%s, start %d, %s, health window ends %s\n",
			t.From, t.To, rolloutNote(t.Rollout), t.Starts, t.Phase, t.Deadline.Format(time.RFC3339))
	}
	if u := st.LastUpdate; u != nil {
		what := fmt.Sprintf("updated %s → %s", u.From, u.To)
		if u.Outcome == wire.ReasonRolledBack {
			what = fmt.Sprintf("rolled back from %s: %s", u.To, u.Detail)
		}
		fmt.Fprintf(e.stdout, "last update %s%s, %s\n", what, rolloutNote(u.Rollout), u.At.Format(time.RFC3339))
	}
}

func rolloutNote(id string) string {
	if id == "" {
		return ""
	}
	return " (rollout " + id + ")"
}
