package integration

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var checkedInRE = regexp.MustCompile(`^checked in: seq (\d+), reason (\S+)`)

// checkin runs `sessiond checkin` against a's running agent and returns the
// sequence number it printed as acknowledged.
func (a *agent) checkin(ctx context.Context) (uint64, result) {
	r := runCmdContext(ctx, nil, bins.sessiond, "checkin", "--state", a.dir)
	if r.err != nil {
		return 0, r
	}
	m := checkedInRE.FindStringSubmatch(r.stdout)
	if m == nil {
		r.err = fmt.Errorf("unexpected output %q", r.stdout)
		return 0, r
	}
	seq, _ := strconv.ParseUint(m[1], 10, 64)
	return seq, r
}

// acks records check-ins that sessiond printed as acknowledged.
type acks struct {
	mu     sync.Mutex
	seqs   map[string][]uint64 // agent name → acknowledged seqs; mu guards all fields
	n      int
	failed []string // why unacknowledged calls failed
}

func (k *acks) add(name string, seq uint64) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seqs[name] = append(k.seqs[name], seq)
	k.n++
	return k.n
}

func (k *acks) fail(why string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failed = append(k.failed, why)
}

// TestBrokerKill9KeepsAcknowledgedCheckIns kills the broker with SIGKILL in
// the middle of a burst of check-ins. A check-in is acknowledged only after
// its transaction is committed, so every sequence number an agent reported
// as acknowledged must be in the machine's history after the broker comes
// back on the same data directory and ports; and the agents must reconnect
// by themselves.
func TestBrokerKill9KeepsAcknowledgedCheckIns(t *testing.T) {
	needBinaries(t)
	const (
		perAgent  = 20 // check-ins asked of each agent; with the others, well under the history limit of 100
		workers   = 4  // concurrent `sessiond checkin` calls per agent
		killAfter = 20 // acknowledgements seen before the kill
		downtime  = time.Second
	)
	base := testDir(t)
	b := startBroker(t, base, "crash", 300*time.Millisecond)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	tok := admin.token("acme", 3, time.Hour).Token
	agents := []*agent{
		enroll(t, base, tok, "pc-1", "windows-ready.json"),
		enroll(t, base, tok, "pc-2", "linux-ready.json"),
		enroll(t, base, tok, "pc-3", "windows-many-updates.json"),
	}
	for _, a := range agents {
		a.start()
	}
	waitOnline(t, admin, 20*time.Second, agents...)

	rec := &acks{seqs: map[string][]uint64{}}
	var killOnce sync.Once
	killed := make(chan int, 1) // receives the acknowledgement count at the kill
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, a := range agents {
		todo := make(chan struct{}, perAgent)
		for range perAgent {
			todo <- struct{}{}
		}
		close(todo)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range todo {
					seq, r := a.checkin(ctx)
					if r.err != nil {
						rec.fail(a.name + ": " + strings.TrimSpace(r.stderr+" "+r.err.Error()))
						continue
					}
					if n := rec.add(a.name, seq); n >= killAfter {
						// Kill from here, so that check-ins are in flight.
						killOnce.Do(func() {
							b.proc.cmd.Process.Kill()
							killed <- n
						})
					}
				}
			}()
		}
	}
	var atKill int
	select {
	case atKill = <-killed:
	case <-time.After(60 * time.Second):
		t.Fatalf("fewer than %d check-ins acknowledged within 60s", killAfter)
	}
	b.proc.wait(t, exitTimeout)
	killedAt := time.Now()
	// Stay down for a few heartbeats, so that agents notice the loss and
	// check-ins asked for meanwhile wait or fail, as in a real crash.
	time.Sleep(downtime)
	b.restart()
	t.Logf("broker SIGKILLed after %d acknowledged check-ins; back %v later", atKill, time.Since(killedAt).Round(time.Millisecond))

	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(100 * time.Second):
		t.Fatal("check-in burst did not finish within 100s")
	}
	t.Logf("%d check-ins acknowledged (%d after the kill), %d failed", rec.n, rec.n-atKill, len(rec.failed))
	for i, f := range rec.failed {
		if i == 5 {
			t.Logf("… %d more failures", len(rec.failed)-5)
			break
		}
		t.Logf("failed (allowed: the broker was down): %s", f)
	}
	if rec.n+len(rec.failed) != perAgent*len(agents) {
		t.Errorf("%d acknowledged + %d failed, want %d calls", rec.n, len(rec.failed), perAgent*len(agents))
	}

	// The agents reconnect by themselves.
	took := poll(t, 20*time.Second, "agents online after broker restart", func() (bool, string) {
		cs, err := admin.tryMachines("--online")
		if err != nil {
			return false, err.Error()
		}
		return len(cs) == len(agents), fmt.Sprintf("%d of %d online", len(cs), len(agents))
	})
	t.Logf("all agents online again %v after the checks finished", took.Round(time.Millisecond))

	for _, a := range agents {
		card := admin.show(a.full())
		stored := map[uint64]bool{}
		for _, h := range card.History {
			if stored[h.Seq] {
				t.Errorf("%s: seq %d appears twice in history", a.name, h.Seq)
			}
			stored[h.Seq] = true
		}
		if len(card.History) >= 100 {
			t.Fatalf("%s: history has %d items: the limit may have dropped some; lower perAgent", a.name, len(card.History))
		}
		var lost []uint64
		for _, seq := range rec.seqs[a.name] {
			if !stored[seq] {
				lost = append(lost, seq)
			}
		}
		slices.Sort(lost)
		if len(lost) > 0 {
			t.Errorf("%s: acknowledged check-ins missing after kill -9: seqs %v (history holds %d items)", a.name, lost, len(card.History))
		}
		acked := slices.Max(append([]uint64{0}, rec.seqs[a.name]...))
		if card.Readiness.CheckInSeq < acked {
			t.Errorf("%s: card shows check-in seq %d, below acknowledged seq %d", a.name, card.Readiness.CheckInSeq, acked)
		}
	}
}
