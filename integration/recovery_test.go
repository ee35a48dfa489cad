package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestIntervalCheckInsAndStale runs an agent that checks in every second:
// it stays ready with interval check-ins; once it stops, the machine turns
// offline at once and stale after 2 intervals plus the grace, while its
// stored state stays readable.
func TestIntervalCheckInsAndStale(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBrokerArgs(t, base, "stale", 300*time.Millisecond, "--stale-grace", "1s")
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	a := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "web-02", "linux-ready.json")
	a.interval = time.Second
	a.start()

	poll(t, 20*time.Second, "interval check-ins", func() (bool, string) {
		c := admin.show(a.full())
		ok := c.Readiness.CheckInReason == wire.ReasonInterval && c.Readiness.CheckInSeq >= 3
		return ok && c.Readiness.State == wire.StateReady, c.Readiness.State + " " + c.Readiness.CheckInReason
	})
	a.stop()
	stopped := time.Now()
	waited := poll(t, 20*time.Second, "stale after the agent stopped", func() (bool, string) {
		c := admin.show(a.full())
		return c.Readiness.State == wire.StateStale && !c.Reachability.Online, c.Readiness.State
	})
	c := admin.show(a.full())
	if c.Readiness.OS == nil || c.Readiness.OS.Name == "" || len(c.Readiness.PendingUpdates) != 1 {
		t.Errorf("stale card lost its stored state: %+v", c.Readiness)
	}
	if len(c.Readiness.Reasons) == 0 || !strings.Contains(c.Readiness.Reasons[0], "no check-in") {
		t.Errorf("stale reasons = %q, want one about the missing check-in", c.Readiness.Reasons)
	}
	// Stale needs 2 × 1 s + 1 s of silence after the last check-in.
	if since := time.Since(stopped); since < 2*time.Second {
		t.Errorf("stale %s after the agent stopped, before 2 intervals + grace could pass", since)
	}
	t.Logf("stale %s after the agent stopped", waited)
}

// TestRestoredBrokerAsksForCheckIn restores a broker's data directory from
// an older backup. The agent's heartbeats say it has a newer acknowledged
// check-in than the broker holds, so the broker asks for one at once
// instead of showing old readiness until the next interval (1 h here).
func TestRestoredBrokerAsksForCheckIn(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBroker(t, base, "restore", 300*time.Millisecond)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	a := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "reception-01", "windows-ready.json")
	a.start()
	waitOnline(t, admin, 20*time.Second, a)

	b.stop()
	backup := filepath.Join(base, "backup")
	if out, err := exec.Command("cp", "-a", b.dir, backup).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v: %s", err, out)
	}
	b.restart()
	waitOnline(t, admin, 20*time.Second, a)
	for i := 0; i < 2; i++ {
		if r := runCmd(t, cmdTimeout, nil, bins.sessiond, "checkin", "--state", a.dir); r.err != nil {
			t.Fatalf("checkin: %v", r)
		}
	}
	if seq := admin.show(a.full()).Readiness.CheckInSeq; seq != 3 {
		t.Fatalf("seq after two demand check-ins = %d, want 3", seq)
	}

	b.stop()
	if err := os.RemoveAll(b.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(backup, b.dir); err != nil {
		t.Fatal(err)
	}
	b.restart()
	waited := poll(t, 20*time.Second, "a fresh check-in after the restore", func() (bool, string) {
		c := admin.show(a.full())
		return c.Readiness.CheckInSeq > 3, c.Readiness.CheckInReason
	})
	c := admin.show(a.full())
	if c.Readiness.CheckInReason != wire.ReasonDemand {
		t.Errorf("check-in after restore has reason %q, want demand (asked by the broker)", c.Readiness.CheckInReason)
	}
	t.Logf("restored broker had a fresh check-in %s after restart", waited)
}
