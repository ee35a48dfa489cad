package rollout

import (
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// countingStore is the store, counting the reads of jobs.
type countingStore struct {
	*store.Store
	mu    sync.Mutex
	scans int // calls of Jobs: reads of every job
	byID  int // jobs asked for by ID
}

func (c *countingStore) Jobs(keep func(*store.JobRecord) bool) ([]store.JobRecord, error) {
	c.mu.Lock()
	c.scans++
	c.mu.Unlock()
	return c.Store.Jobs(keep)
}

func (c *countingStore) JobsByID(ids []string) ([]store.JobRecord, error) {
	c.mu.Lock()
	c.byID += len(ids)
	c.mu.Unlock()
	return c.Store.JobsByID(ids)
}

func (c *countingStore) reads() (scans, byID int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scans, c.byID
}

// TestReportsOfStoppedRollouts: a rollout that arrives ended, with
// reports in its jobs that no machine record holds (a broker of before
// copied them there), shows them on its machines' cards; the room reads
// its jobs while it may still change, then not again; a room started
// later reads every job once.
func TestReportsOfStoppedRollouts(t *testing.T) {
	r := newRig(t)
	ids := []string{r.machine("acme", "a", "0.2.0"), r.machine("acme", "b", "0.2.0"), r.machine("acme", "c", "0.2.0")}
	cs := &countingStore{Store: r.st}
	room := New(Config{Name: "eu-1", Now: r.now}, Deps{Store: cs, Releases: r.rel, Reach: r.reach,
		Audit: audit.New(r.st, nil, nil), Replicated: func(...store.Key) {}})
	lastUpdate := func(room *Room, id string) *wire.UpdateReport {
		t.Helper()
		m, _ := r.st.Machine(id)
		if m.LastUpdate != nil {
			t.Fatalf("machine %s's record holds a report: the test would prove nothing", id)
		}
		c := readiness.Card(&m, wire.Reachability{}, "", r.now(), readiness.Policy{})
		room.Annotate(&c)
		return c.Readiness.LastUpdate
	}
	report := func(machine string, at time.Time) *wire.UpdateReport {
		t.Helper()
		rep := &wire.UpdateReport{From: "0.2.0", To: "0.3.0", Rollout: "d00000000001", Outcome: wire.ReasonUpdated, At: at}
		if _, err := r.st.UpdateJob(JobID("d00000000001", machine), func(j *store.JobRecord) error {
			j.Update.Report = rep
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	step := func(d time.Duration) {
		r.advance(d)
		room.tick()
	}

	room.tick() // the first scan, of no job
	if scans, byID := cs.reads(); scans != 1 || byID != 0 {
		t.Fatalf("first scan: %d reads of every job, %d by ID; want 1, 0", scans, byID)
	}
	benchRollout(t, r.st, "d00000000001", wire.RolloutDone, ids, store.JobDone, false)
	report(ids[0], r.now())
	step(reportScan)
	if u := lastUpdate(room, ids[0]); u == nil || u.Rollout != "d00000000001" {
		t.Fatalf("a's card once the ended rollout arrived: %+v", u)
	}
	// A report copied later, within reportSettle, is seen too.
	late := report(ids[1], r.now().Add(time.Minute))
	step(reportScan)
	if u := lastUpdate(room, ids[1]); u == nil || !u.At.Equal(late.At) {
		t.Fatalf("b's card after a late copy: %+v", u)
	}
	scans, byID := cs.reads()
	if scans != 1 || byID != 2*len(ids) {
		t.Fatalf("%d reads of every job, %d by ID; want 1 and two reads of the rollout's %d jobs", scans, byID, len(ids))
	}
	// Once settled, the rollout's jobs cost a scan nothing.
	for range 2 * int(reportSettle/reportScan) {
		step(reportScan)
	}
	_, settled := cs.reads()
	report(ids[2], r.now())
	for range 4 {
		step(reportScan)
	}
	if s, n := cs.reads(); s != 1 || n != settled {
		t.Errorf("after reportSettle: %d reads of every job, %d jobs by ID; want 1 and %d, as before", s, n, settled)
	}
	// A room started now reads every job once, and sees them all.
	restarted := New(Config{Name: "eu-1", Now: r.now}, r.room.deps)
	restarted.tick()
	for _, id := range ids {
		if u := lastUpdate(restarted, id); u == nil {
			t.Errorf("after a restart, %s's card has no report", id)
		}
	}
}
