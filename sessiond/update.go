package sessiond

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
	"github.com/readymesh/readymesh/sessiond/update"
)

// An update job (wire.JobRequest.Update) comes through the same door as a
// script job: a trusted broker's self-issued grant, the job's record
// (once only), consent; its grant must be elevated. The agent then checks
// the order against its pinned release key (update.Check), downloads this
// platform's binary from the broker holding the bridge, stages it as
// EXE.new next to its executable and writes the trial state. Only then
// does it answer the job, and then it hands over: Run returns, and the
// caller (sessiond run) becomes the new binary's watchdog (update.Run).
// Any refusal before that leaves the executable, and everything else the
// update would have written, as it was.

// updateError is a refused update: the reason and the wire code the job
// reply carries.
type updateError struct {
	code string
	err  error
}

func (e *updateError) Error() string { return e.err.Error() }
func (e *updateError) Unwrap() error { return e.err }

func refuseUpdate(code string, format string, args ...any) *updateError {
	return &updateError{code: code, err: fmt.Errorf(format, args...)}
}

// runUpdate installs the update job's release and records the job's
// result before the reply goes out. On success it returns the staged
// trial, to hand over to once the reply is sent.
func (a *Agent) runUpdate(ctx context.Context, req wire.JobRequest, started time.Time) (wire.JobReply, *update.Trial) {
	finish := func(code int, out string) {
		done := a.cfg.Now().UTC()
		if err := a.db.FinishJob(req.Job, localdb.JobRun{Started: started, Finished: &done, ExitCode: code, Output: out}); err != nil {
			a.log.Warn("job result not recorded", "job", req.Job, "err", err)
		}
	}
	if !a.updating.CompareAndSwap(false, true) {
		msg := "another update is being installed on this agent now"
		finish(-1, msg)
		return wire.JobReply{Error: &wire.Error{Code: wire.CodeUnavailable, Message: msg}}, nil
	}
	t, err := a.install(ctx, req.Job, req.Update)
	if err != nil {
		a.updating.Store(false)
		msg := "update to " + req.Update.Version + " refused: " + err.Error()
		finish(-1, msg) // handleJob logs it
		return wire.JobReply{Error: &wire.Error{Code: err.code, Message: msg}}, nil
	}
	out := fmt.Sprintf("%s staged; restarting into it (health window %s)", t.To, t.Window())
	finish(0, out)
	return wire.JobReply{Output: out}, t
}

// install checks the order, downloads and stages the binary, and saves
// the trial state.
func (a *Agent) install(ctx context.Context, job string, o *wire.UpdateOrder) (*update.Trial, *updateError) {
	switch t, err := update.LoadTrial(a.cfg.StateDir); {
	case err != nil:
		return nil, refuseUpdate(wire.CodeInternal, "%w", err)
	case t != nil:
		return nil, refuseUpdate(wire.CodeUnavailable, "the update to %s is still on trial here", t.To)
	}
	e, err := a.db.Enrolment()
	if err != nil {
		return nil, refuseUpdate(wire.CodeInternal, "%w", err)
	}
	plan, err := update.Check(o, e.ReleaseKey, buildinfo.Version, runtime.GOOS+"/"+runtime.GOARCH)
	if err != nil {
		return nil, refuseUpdate(wire.CodeForbidden, "%w", err)
	}
	exe, err := a.executable()
	if err != nil {
		return nil, refuseUpdate(wire.CodeInternal, "%w", err)
	}
	p := update.PathsFor(exe)
	if err := update.CheckWritable(p); err != nil {
		return nil, refuseUpdate(wire.CodeForbidden, "%w", err)
	}
	if uerr := a.fetchAndStage(ctx, plan.Binary, p); uerr != nil {
		return nil, uerr
	}
	t := update.NewTrial(buildinfo.Version, plan.Manifest.Version, time.Duration(o.HealthWindowSec)*time.Second, a.cfg.Now())
	t.Rollout, t.Job, t.Exe, t.SHA256, t.Size = o.Rollout, job, exe, plan.Binary.SHA256, plan.Binary.Size
	t.Manifest, t.Signature = o.Manifest, o.Signature
	if err := t.Save(a.cfg.StateDir); err != nil {
		os.Remove(p.New)
		return nil, refuseUpdate(wire.CodeInternal, "%w", err)
	}
	a.log.Info("update staged", "from", t.From, "to", t.To, "rollout", t.Rollout, "staged", p.New)
	return t, nil
}

// fetchAndStage downloads bin from the broker holding the bridge and
// stages it as p.New.
func (a *Agent) fetchAndStage(ctx context.Context, bin wire.ReleaseBinary, p update.Paths) *updateError {
	f := update.Fetcher{Host: a.host, Broker: a.waitUp, Dir: update.Dir(a.cfg.StateDir),
		ChunkTimeout: a.cfg.DownloadChunkTimeout, Logger: a.log}
	blob, err := f.Fetch(ctx, bin)
	if err != nil {
		return refuseUpdate(wire.CodeUnavailable, "%w", err)
	}
	defer os.Remove(blob)
	if err := update.Stage(blob, bin, p); err != nil {
		return refuseUpdate(wire.CodeInternal, "%w", err)
	}
	return nil
}

// executable is the file updates replace.
func (a *Agent) executable() (string, error) {
	if a.cfg.Executable != "" {
		return a.cfg.Executable, nil
	}
	return update.Executable()
}

// replyDelivered waits (bounded) until the broker has read the job's
// reply and closed its side, so the hand-over, which closes the bridge,
// does not cut the reply off.
func replyDelivered(s network.Stream) {
	s.CloseWrite()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, io.LimitReader(s, 4096))
}

// handOver stops the agent's Run so its caller can run the staged trial.
func (a *Agent) handOver(t *update.Trial) {
	a.log.Info("handing over to the staged update", "to", t.To)
	a.mu.Lock()
	a.staged = t
	stop := a.stopRun
	a.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Staged returns the update this agent staged and handed over to when
// Run returned for it, or nil. The caller runs it with update.Run once
// Run has returned (the database and bridge are closed then).
func (a *Agent) Staged() *update.Trial {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.staged
}

// WaitUnlocked waits, up to limit, until no process holds the local
// database of stateDir: a watchdog that resumes a trial waits for the
// child its predecessor left to finish stopping.
func WaitUnlocked(ctx context.Context, stateDir string, limit time.Duration) error {
	path := filepath.Join(stateDir, DBFile)
	if _, err := os.Stat(path); err != nil {
		return nil // not enrolled: New says so
	}
	deadline := time.Now().Add(limit)
	for {
		db, err := localdb.Open(path) // waits up to 2 s itself
		if err == nil {
			return db.Close()
		}
		if !errors.Is(err, localdb.ErrLocked) || !time.Now().Before(deadline) || ctx.Err() != nil {
			return fmt.Errorf("sessiond: %w", err)
		}
	}
}
