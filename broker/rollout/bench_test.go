package rollout

import (
	"fmt"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// BenchmarkTick is one tick of the driver on a broker that holds ten
// finished rollouts of 10,000 machines each (and their 100,000 jobs) and
// one active rollout of 1,000 of those machines: what the finished ones
// cost every second.
func BenchmarkTick(b *testing.B) {
	const fleet, active = 10_000, 1_000
	st, ids, rel := benchFleet(b, fleet, false)
	benchRollout(b, st, "a00000000000", wire.RolloutRolling, ids[:active], "", false)
	clock := func() time.Time { return now }
	room := New(Config{Name: "eu-1", Now: clock}, Deps{Store: st, Releases: rel, Reach: &reach{online: map[string]bool{}},
		Audit: audit.New(st, nil, nil), Replicated: func(...store.Key) {}})
	for range 8 { // queue the active rollout's jobs: the steady state
		room.tick()
	}
	b.ResetTimer()
	for b.Loop() {
		room.tick()
	}
}

// BenchmarkScanReports is the read of update reports the room makes every
// reportScan, on a broker that holds ten finished rollouts of 1,000
// machines each, every job with its agent's report, and one active
// rollout of 1,000 of those machines: what the finished ones cost every
// 30 s once the room has run a while.
func BenchmarkScanReports(b *testing.B) {
	room, _, at := scanBench(b)
	b.ResetTimer()
	for b.Loop() {
		*at = at.Add(reportScan)
		room.scanReports(*at)
	}
}

// BenchmarkScanReportsSettling is the same read while one more rollout
// of 1,000 machines, which ended after the room started, is within
// reportSettle: what a scan costs in the minutes after a rollout ends.
func BenchmarkScanReportsSettling(b *testing.B) {
	room, st, at := scanBench(b)
	ids := make([]string, 1_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-machine-%07d", i)
	}
	const id = "e00000000000"
	benchRollout(b, st, id, wire.RolloutDone, ids, store.JobDone, true)
	b.ResetTimer()
	for b.Loop() {
		*at = at.Add(reportScan)
		room.mu.Lock()
		room.ended[id] = *at // it stays within reportSettle
		room.mu.Unlock()
		room.scanReports(*at)
	}
}

// scanBench is the room of BenchmarkScanReports, its store, and its
// clock, after its first scan.
func scanBench(b *testing.B) (*Room, *store.Store, *time.Time) {
	const fleet = 1_000
	st, ids, rel := benchFleet(b, fleet, true)
	benchRollout(b, st, "a00000000000", wire.RolloutRolling, ids, "", false)
	at := now
	room := New(Config{Name: "eu-1", Now: func() time.Time { return at }}, Deps{Store: st, Releases: rel,
		Reach: &reach{online: map[string]bool{}}, Audit: audit.New(st, nil, nil), Replicated: func(...store.Key) {}})
	for range 8 { // queue the active rollout's jobs, and the first scan: the steady state
		room.tick()
		at = at.Add(reportScan)
	}
	if n := len(room.reports); n != fleet {
		b.Fatalf("the room holds the reports of %d machines, want %d", n, fleet)
	}
	return room, st, &at
}

// benchFleet is a store of fleet machines of acme, their IDs, and release
// 0.3.0, with ten finished rollouts over every machine, each with a done
// job per machine holding its agent's report when reports is set.
func benchFleet(b *testing.B, fleet int, reports bool) (*store.Store, []string, *releases) {
	b.Helper()
	st := fleettest.Open(b)
	if err := fleettest.Seed(st, "acme", fleet); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, fleet)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-machine-%07d", i)
	}
	rel := &releases{recs: map[string]store.ReleaseRecord{}}
	rel.publish(b, "0.3.0", "")
	for k := range 10 {
		benchRollout(b, st, fmt.Sprintf("f%011d", k), wire.RolloutDone, ids, store.JobDone, reports)
	}
	return st, ids, rel
}

// benchRollout stores rollout id in state over machines ids, started at
// now, with a job in jobState for each machine ("" for none), holding
// its agent's report when report is set.
func benchRollout(b testing.TB, st *store.Store, id, state string, ids []string, jobState string, report bool) {
	b.Helper()
	rec := store.RolloutRecord{ID: id, Version: "0.3.0", All: true, HealthWindowSec: 900, MaxParallel: 50, FailPct: 10,
		State: state, CreatedBy: "admin", CreatedAt: now, Changed: now, Home: "eu-1", Rest: ids,
		WaveStarted: [2]time.Time{now, now}}
	if state == wire.RolloutDone {
		rec.Ended = now
	}
	if err := st.CreateRollout(rec); err != nil {
		b.Fatal(err)
	}
	if jobState == "" {
		return
	}
	for lo := 0; lo < len(ids); lo += 1000 {
		chunk := ids[lo:min(lo+1000, len(ids))]
		js := make([]store.JobRecord, len(chunk))
		jids := make([]string, len(chunk))
		for i, m := range chunk {
			js[i] = store.JobRecord{ID: JobID(id, m), Machine: m, Client: "acme", Name: m, Mode: wire.ModeElevated, CreatedBy: "admin",
				CreatedAt: now, Expires: now.Add(Lifetime), Update: &store.JobUpdate{Version: "0.3.0", Rollout: id, HealthWindowSec: 900}}
			jids[i] = js[i].ID
		}
		if err := st.CreateJobs(js); err != nil {
			b.Fatal(err)
		}
		if _, err := st.UpdateJobs(jids, func(j *store.JobRecord) error {
			j.State, j.Result = jobState, &store.JobResult{Output: "staged", Finished: now}
			if report {
				j.Update.Report = &wire.UpdateReport{From: "0.2.0", To: "0.3.0", Rollout: id, Outcome: wire.ReasonUpdated, At: now}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
