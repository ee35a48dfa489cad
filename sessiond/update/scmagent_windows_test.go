package update

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/service"
)

// The hand-over under the Service Control Manager. The test binary,
// copied to EXE with a version stamp appended (Windows loads a program
// and ignores bytes after its image), is registered as a service whose
// process is a stand-in agent (TestSCMAgentProcess). It does around
// package update what sessiond run does (sessiond/cli, runUpdating):
// under service.Run it takes the lock, resumes a trial an earlier start
// left, else runs "the agent", which stages the release it is handed (a
// copy of the test binary stamped as the new version) and hands over to
// it through Run. The watchdog's children play the part scmChild, which
// the file child-part in the state directory picks. Every process
// appends what it does to events.log, naming the version stamped on the
// file it was started from: that is how the test tells which binary runs.

// The versions stamped on the old and the new binary.
const (
	scmOldVersion = "0.2.0"
	scmNewVersion = "0.3.0"
)

// Files in the state directory of the service.
const (
	eventsFile    = "events.log"                 // what every process did (scmEvent, one JSON per line)
	watchdogLog   = "watchdog.log"               // the service's log: the watchdog's and its children's stderr
	orderFile     = "order.json"                 // the release the stand-in agent stages (wire.ReleaseBinary)
	blobFile      = "release.bin"                // its downloaded binary
	childPartFile = "child-part"                 // what the children do: silent, healthy, exit2 or stubborn
	stampPrefix   = "\n#readymesh-test-version=" // before the version stamped at a binary's end
)

func init() { platformParts["scm-child"] = scmChild }

// scmEvent is a line of events.log.
type scmEvent struct {
	Who     string `json:"who"` // "service" or "child"
	PID     uint32 `json:"pid"`
	Version string `json:"version"` // stamped on the process's executable
	What    string `json:"what"`
	Start   int    `json:"start,omitempty"` // a child's start, as the trial counts it
}

// recorder appends the events of one process to events.log.
type recorder struct {
	path, who, version string
}

func newRecorder(state, who string) recorder {
	return recorder{path: filepath.Join(state, eventsFile), who: who, version: ownVersion()}
}

func (r recorder) note(start int, format string, args ...any) {
	e := scmEvent{Who: r.who, PID: uint32(os.Getpid()), Version: r.version, What: fmt.Sprintf(format, args...), Start: start}
	b, _ := json.Marshal(e)
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err == nil {
		f.Write(append(b, '\n'))
		f.Close()
	}
}

// ownVersion is the version stamped at the end of this process's
// executable, "unstamped" when there is none.
func ownVersion() string {
	exe, err := os.Executable()
	if err != nil {
		return "unknown: " + err.Error()
	}
	f, err := os.Open(exe)
	if err != nil {
		return "unknown: " + err.Error()
	}
	defer f.Close()
	tail := make([]byte, 64)
	if _, err := f.Seek(-int64(len(tail)), io.SeekEnd); err != nil {
		return "unknown: " + err.Error()
	}
	if _, err := io.ReadFull(f, tail); err != nil {
		return "unknown: " + err.Error()
	}
	i := bytes.LastIndex(tail, []byte(stampPrefix))
	if i < 0 {
		return "unstamped"
	}
	return strings.TrimSpace(string(tail[i+len(stampPrefix):]))
}

// TestSCMAgentProcess is the service the TestSCMHandOver tests register:
// the SCM runs a stamped copy of this test binary with
// -test.run=^TestSCMAgentProcess$ -- STATE.
func TestSCMAgentProcess(t *testing.T) {
	state := flag.Arg(0)
	if state == "" {
		t.Skip("only the Service Control Manager runs this, as the service the TestSCMHandOver tests start")
	}
	rec := newRecorder(state, "service")
	rec.note(0, "started")
	log, err := os.OpenFile(filepath.Join(state, watchdogLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		rec.note(0, "no log: %v", err)
		return
	}
	defer log.Close()
	err = service.Run(context.Background(), func(ctx context.Context) error { return scmAgent(ctx, state, rec, log) })
	rec.note(0, "returned: %v", err)
}

// scmAgent is the service's work, as sessiond run's: the lock for the
// process's life, a trial left by an earlier start resumed, then the
// agent, which may stage an update and hand over to it.
func scmAgent(ctx context.Context, state string, rec recorder, log io.Writer) error {
	lock, err := TakeLock(state, 10*time.Second)
	if err != nil {
		rec.note(0, "lock: %v", err)
		return err
	}
	defer lock.Release()
	rec.note(0, "locked")
	// The watchdog as sessiond run configures it: defaults, the child's
	// stdout this process's, its stderr this process's log.
	wd := Config{StateDir: state, Args: []string{"run", "--state", state},
		Env: append(os.Environ(), helperEnv+"=scm-child"), Stdout: os.Stdout, Stderr: log,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	t, err := LoadTrial(state)
	if err != nil {
		return err
	}
	if t != nil {
		rec.note(0, "resuming the trial of %s, starts %d", t.To, t.Starts)
		if r := Run(ctx, wd, t); r.End != RolledBack {
			return watchdogEnd(rec, r)
		}
		rec.note(0, "rolled back: %s", t.Detail)
	}
	for {
		t, err := standInAgent(ctx, state, rec)
		if err != nil || t == nil {
			return err
		}
		if r := Run(ctx, wd, t); r.End != RolledBack {
			return watchdogEnd(rec, r)
		}
		rec.note(0, "rolled back: %s", t.Detail)
	}
}

// watchdogEnd notes how a watchdog that did not roll back ended and
// returns what sessiond run would: the committed child's failure.
func watchdogEnd(rec recorder, r Result) error {
	rec.note(0, "watchdog ended: %s, child exit %v", r.End, r.Exit)
	if r.End == Committed && r.Exit != nil {
		return fmt.Errorf("the updated agent: %w", r.Exit)
	}
	return nil
}

// standInAgent runs until ctx ends, unless it has a release to stage:
// then it stages it next to its executable, saves the trial and returns
// it, to hand over to, as sessiond's agent does with an update job.
func standInAgent(ctx context.Context, state string, rec recorder) (*Trial, error) {
	rec.note(0, "agent running")
	var bin wire.ReleaseBinary
	if ok, err := readJSON(filepath.Join(state, orderFile), &bin); err != nil || !ok {
		if err != nil {
			return nil, err
		}
		<-ctx.Done()
		rec.note(0, "agent stopped")
		return nil, nil
	}
	exe, err := Executable()
	if err != nil {
		return nil, err
	}
	p := PathsFor(exe)
	if err := CheckWritable(p); err != nil {
		return nil, err
	}
	blob := filepath.Join(state, blobFile)
	if err := Stage(blob, bin, p); err != nil {
		return nil, err
	}
	os.Remove(blob)
	os.Remove(filepath.Join(state, orderFile))
	t := NewTrial(ownVersion(), scmNewVersion, time.Hour, time.Now())
	t.Exe, t.SHA256, t.Size = exe, bin.SHA256, bin.Size
	if err := t.Save(state); err != nil {
		os.Remove(p.New)
		return nil, err
	}
	rec.note(0, "staged %s as %s; handing over", t.To, filepath.Base(p.New))
	return t, nil
}

// scmChild is a binary the service's watchdog starts: it plays the part
// child-part names, and stops when its stdin ends (StopOnEOF), as the
// agent on trial does.
func scmChild(state string) int {
	rec := newRecorder(state, "child")
	b, _ := os.ReadFile(filepath.Join(state, childPartFile))
	part := strings.TrimSpace(string(b))
	tr, _ := LoadTrial(state)
	start := -1 // started after a commit: no trial any more
	if tr != nil {
		start = tr.Starts
	}
	rec.note(start, "started as %s", part)
	ctx, cancel := StopOnEOF(context.Background(), os.Stdin)
	defer cancel()
	switch part {
	case "exit2": // a broken build
		fmt.Fprintln(os.Stderr, "panic: the new build is broken")
		rec.note(start, "exiting with status 2")
		return 2
	case "stubborn": // never stops by itself: only a kill ends it
		time.Sleep(5 * time.Minute)
		rec.note(start, "was not killed")
		return 0
	case "healthy": // checks in
		if tr != nil {
			if err := MarkHealthy(state, tr); err != nil {
				rec.note(start, "cannot mark healthy: %v", err)
				return 67
			}
			rec.note(start, "healthy")
		}
	}
	<-ctx.Done()
	rec.note(start, "stdin ended; stopping")
	return 0
}
