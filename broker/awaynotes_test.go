package broker

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// runBroker starts a broker on cfg as startBroker does, and returns it
// with a stop that cancels it and waits for Run to return. Unlike
// startBroker's cleanup, stop can come before the clients' own cleanups,
// with their streams still open.
func runBroker(t *testing.T, cfg Config, prefix string) (*testBroker, func()) {
	t.Helper()
	lg := newTestLog(t, prefix)
	cfg.Logger = slog.New(lg)
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	readyc := make(chan wire.BrokerInfo, 1)
	done := make(chan error, 1)
	var cred string
	go func() {
		done <- b.Run(ctx, func(info wire.BrokerInfo, c string) { cred = c; readyc <- info })
	}()
	tb := &testBroker{Broker: b, t: t, cfg: cfg, log: lg}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("broker Run returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("broker Run did not return within 10s of cancel")
			}
			lg.stop()
		})
	}
	t.Cleanup(stop)
	select {
	case tb.info = <-readyc:
		tb.cred = cred
	case err := <-done:
		t.Fatalf("broker Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("broker not ready within 10s")
	}
	return tb, stop
}

// TestAwayNotesRestart: a broker that runs alone, stopped cleanly and
// started again on its data directory, still knows why its machines are
// away: the laptop that said it went to sleep is asleep, not lost, and
// the machine whose bridge the stop broke says so. The notes file is
// gone once the broker is up.
func TestAwayNotesRestart(t *testing.T) {
	cfg := TestConfig(t.TempDir())
	cfg.Heartbeat = time.Minute // the open bridge stays up without heartbeats
	path := filepath.Join(cfg.DataDir, "away-notes.json")

	tb, stop := runBroker(t, cfg, "broker-1:")
	_, tok := tb.fleet(t)
	laptop := tb.agent(t, tok, "laptop-01")
	ps, _ := laptop.openPresence(wire.Hello{MachineID: laptop.ID(), AgentVersion: "0.4.0"})
	ps.beat(t, wire.Heartbeat{Seq: 1})
	ps.beat(t, wire.Heartbeat{Seq: 2, Leaving: &wire.Leaving{Reason: wire.AwayAsleep, Detail: "lid closed"}})
	if err := ps.s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the laptop offline", func() bool { return !tb.reach.Online(laptop.ID()) })
	desk := tb.agent(t, tok, "desk-02")
	dps, _ := desk.openPresence(wire.Hello{MachineID: desk.ID(), AgentVersion: "0.4.0"})
	dps.beat(t, wire.Heartbeat{Seq: 1})
	stop()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("notes file after the stop: %v, %v; want one of mode 0600", fi, err)
	}

	tb, _ = runBroker(t, cfg, "broker-2:")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the notes file is still there once the broker serves: %v", err)
	}
	admin := tb.admin(t)
	card, _ := admin.card(laptop.ID())
	if r := card.Reachability; r.Online || r.OfflineReason != wire.AwayAsleep || r.Detail != "lid closed" {
		t.Errorf("laptop after the restart: %+v; want asleep, lid closed", r)
	}
	card, _ = admin.card(desk.ID())
	if r := card.Reachability; r.Online || r.OfflineReason != wire.AwayLost ||
		!strings.Contains(r.Detail, "was open when that broker stopped") {
		t.Errorf("desk after the restart: %+v; want lost as the broker stopped", r)
	}
	if !tb.log.has("away notes loaded", "notes=2") {
		t.Error("the load of 2 notes was not logged")
	}
}
