package sessiond

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
	"github.com/readymesh/readymesh/sessiond/sysevents"
)

// holdAgent is an agent with only what the hold needs: its local
// database, no bridge (runStopped and runResumed do nothing without a
// run).
func holdAgent(t *testing.T) *Agent {
	t.Helper()
	cfg := Config{StateDir: testdir.New(t), OnMetered: wire.MeteredQuiet}
	cfg.setDefaults()
	db, err := localdb.Open(filepath.Join(cfg.StateDir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &Agent{cfg: cfg, db: db, log: slog.New(slog.NewTextHandler(io.Discard, nil)), upChanged: make(chan struct{}),
		holdChanged: make(chan struct{}), quietKick: make(chan struct{}, 1), modeKick: make(chan struct{}, 1)}
}

// TestWakeOnMeteredStaysDown: a machine that wakes on a metered link
// with the quiet policy goes from asleep to quiet in one step: the
// bridge goroutine, waiting on the hold, never sees it released, and the
// check-in loop is told to make a quiet check-in.
func TestWakeOnMeteredStaysDown(t *testing.T) {
	a := holdAgent(t)
	a.setHold(&wire.Leaving{Reason: wire.AwayAsleep}, asleepHold)
	a.setMetered(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	released := make(chan struct{})
	go func() {
		a.waitHold(ctx)
		if ctx.Err() == nil {
			close(released)
		}
	}()
	a.onSystemEvent(ctx, sysevents.Event{Kind: sysevents.Resume, At: time.Now()})
	select {
	case <-released:
		t.Fatal("the hold was released on waking: the bridge would come up on the metered link")
	case <-time.After(100 * time.Millisecond):
	}
	if l, _, _ := a.held(); l == nil || l.Reason != wire.AwayQuiet || l.ExpectedBack == nil {
		t.Errorf("hold %+v, want quiet with its expected return", l)
	}
	select {
	case <-a.modeKick:
	default:
		t.Error("the check-in loop was not told quiet mode began")
	}
	// Unmetered: back, saying so.
	a.setMetered(false)
	a.decideQuiet(ctx)
	select {
	case <-released:
	case <-time.After(time.Second):
		t.Fatal("the hold stayed after the connection was unmetered")
	}
	if r := a.takeReturned(); r == nil || r.What != wire.ReturnedUnmetered {
		t.Errorf("returned %+v, want unmetered", r)
	}
}

// TestHoldEnds: a hold with an end (an asleep one whose resume never
// came, a shutdown that never came) is released when it passes, and the
// quiet decision is asked for again.
func TestHoldEnds(t *testing.T) {
	a := holdAgent(t)
	a.setHold(&wire.Leaving{Reason: wire.AwayShutdown}, 20*time.Millisecond)
	done := make(chan struct{})
	go func() { a.waitHold(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the hold did not end")
	}
	if l, _, _ := a.held(); l != nil {
		t.Errorf("still held: %+v", l)
	}
	select {
	case <-a.quietKick:
	default:
		t.Error("no quiet decision asked for after the hold ended")
	}
}

// TestCancelledShutdownSaysNothing: a shutdown that logind cancels
// releases the hold with nothing to tell, and a later stop is a stop.
func TestCancelledShutdownSaysNothing(t *testing.T) {
	a := holdAgent(t)
	a.cfg.OnMetered = wire.MeteredNormal
	ctx := context.Background()
	a.onSystemEvent(ctx, sysevents.Event{Kind: sysevents.Shutdown, At: time.Now(), Reboot: true})
	if l, _, _ := a.held(); l == nil || l.Reason != wire.AwayShutdown {
		t.Fatalf("hold %+v after the shutdown notice", l)
	}
	if n := a.stopNotice(ctx); n.Reason != wire.AwayShutdown {
		t.Errorf("a stop after the notice says %q, want shutdown", n.Reason)
	}
	a.onSystemEvent(ctx, sysevents.Event{Kind: sysevents.Resume, At: time.Now(), Detail: "shutdown cancelled"})
	if l, _, _ := a.held(); l != nil {
		t.Errorf("still held after the cancel: %+v", l)
	}
	if r := a.takeReturned(); r != nil {
		t.Errorf("a cancelled shutdown says %+v", r)
	}
	if n := a.stopNotice(ctx); n.Reason != wire.AwayStopped {
		t.Errorf("a stop after the cancel says %q, want stopped", n.Reason)
	}
}
