package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/sessiond"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// TestKillStorm: 200 agents check in every two seconds while their broker
// is killed with SIGKILL and restarted five times. Every check-in an agent
// saw acknowledged is in the broker's store afterwards (the store commits
// before it acknowledges), and every agent is online again within 30 s of
// the last restart. The agents run in this process (sessiond.Agent, each
// with its own key, bridge host and state); the broker is the real binary.
func TestKillStorm(t *testing.T) {
	needBinaries(t)
	const agents, kills = 200, 5
	base := testDir(t)
	br := startBroker(t, base, "storm", time.Second)
	admin := br.admin(base)
	admin.ok("clients", "create", "acme")
	token := admin.token("acme", agents, time.Hour).Token
	dirs := enrollInProcess(t, base, token, agents)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	inventory := fixture(t, "linux-ready.json")
	for _, dir := range dirs {
		a, err := sessiond.New(sessiond.Config{StateDir: dir, Inventory: inventory, SystemBus: sessiond.NoSystemBus, CheckInInterval: 2 * time.Second,
			SessionAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { a.Run(ctx) })
	}
	waitAllOnline(t, admin, agents, time.Minute)

	for i := range kills {
		time.Sleep(3 * time.Second) // check-ins go on
		br.proc.signal(t, syscall.SIGKILL)
		if err := br.proc.wait(t, exitTimeout); err == nil {
			t.Fatalf("kill %d: the broker exited cleanly after SIGKILL", i+1)
		}
		time.Sleep(500 * time.Millisecond)
		br.restart()
	}
	took := waitAllOnline(t, admin, agents, 30*time.Second)
	t.Logf("all %d agents online %s after the last of %d restarts", agents, took.Round(100*time.Millisecond), kills)

	// Stop the agents (their databases close), then compare what each saw
	// acknowledged with what the broker stored.
	cancel()
	wg.Wait()
	stored := map[string]uint64{}
	for _, c := range admin.machines() {
		stored[c.ID] = c.Readiness.CheckInSeq
	}
	lost, total := 0, uint64(0)
	for _, dir := range dirs {
		id, acked := lastAcked(t, dir)
		total += acked
		if stored[id] < acked {
			lost++
			if lost <= 5 {
				t.Errorf("agent %s: check-in %d was acknowledged, the broker holds %d", id, acked, stored[id])
			}
		}
	}
	t.Logf("%d check-ins acknowledged in all", total)
	if lost > 0 {
		t.Errorf("%d of %d agents lost acknowledged check-ins", lost, agents)
	}
	if total < 2*agents {
		t.Errorf("only %d check-ins acknowledged across %d agents: the storm did not exercise check-ins", total, agents)
	}
}

// enrollInProcess enrols n agents with token, eight at a time, and
// returns their state directories.
func enrollInProcess(t *testing.T, base, token string, n int) []string {
	t.Helper()
	dirs := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		dirs[i] = filepath.Join(base, fmt.Sprintf("agent-%03d", i))
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
			defer cancel()
			_, err := sessiond.Enroll(ctx, sessiond.EnrollConfig{StateDir: dirs[i], Token: token,
				Name: fmt.Sprintf("pc-%03d", i)})
			if err != nil {
				errs <- fmt.Errorf("enrol pc-%03d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return dirs
}

// waitAllOnline polls until n machines are online, for at most limit, and
// returns how long it took.
func waitAllOnline(t *testing.T, admin *tech, n int, limit time.Duration) time.Duration {
	t.Helper()
	return poll(t, limit, fmt.Sprintf("%d machines online", n), func() (bool, string) {
		cards, err := admin.tryMachines()
		if err != nil {
			return false, err.Error()
		}
		online := 0
		for _, c := range cards {
			if c.Reachability.Online {
				online++
			}
		}
		return online == n, fmt.Sprintf("%d of %d online", online, n)
	})
}

// lastAcked reads an agent's machine ID and newest acknowledged check-in
// from its stopped state.
func lastAcked(t *testing.T, dir string) (id string, seq uint64) {
	t.Helper()
	db, err := localdb.Open(filepath.Join(dir, sessiond.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, err := db.Enrolment()
	if err != nil {
		t.Fatal(err)
	}
	last, _, err := db.Last()
	if err != nil {
		t.Fatal(err)
	}
	return e.MachineID, last.Seq
}
