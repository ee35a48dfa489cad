package store

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestRolloutsWhere: the filter sees each rollout's ID and state, read
// from the head of the record, and only the rollouts it keeps are
// decoded and returned, with their final counts.
func TestRolloutsWhere(t *testing.T) {
	s, _ := newStore(t)
	done := testRollout("00000000000d")
	done.State, done.Ended, done.Final = wire.RolloutDone, t0, map[string]map[string]int{"acme": {wire.StepUpdated: 2}}
	for _, r := range []RolloutRecord{testRollout("00000000000a"), done} {
		if err := s.CreateRollout(r); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]string{}
	got, err := s.RolloutsWhere(func(id, state string) bool {
		seen[id] = state
		return state == wire.RolloutCanary
	})
	if err != nil || len(got) != 1 || got[0].ID != "00000000000a" || len(got[0].Rest) != 1 {
		t.Fatalf("RolloutsWhere = %+v, %v", got, err)
	}
	if seen["00000000000a"] != wire.RolloutCanary || seen["00000000000d"] != wire.RolloutDone {
		t.Errorf("the filter saw %v", seen)
	}
	all, err := s.RolloutsWhere(func(string, string) bool { return true })
	if err != nil || len(all) != 2 || all[1].Final["acme"][wire.StepUpdated] != 2 {
		t.Errorf("all = %+v, %v", all, err)
	}
	bad := done
	bad.ID, bad.Final = "00000000000e", map[string]map[string]int{"acme": {"exploded": 1}}
	if err := s.CreateRollout(bad); err == nil {
		t.Error("final counts of an unknown step were stored")
	}
}

// TestRolloutHead: the head of a record gives its ID and state; a
// record laid out otherwise gives ok false (and is decoded in full).
func TestRolloutHead(t *testing.T) {
	raw, err := json.Marshal(testRollout("3f9a0c1b2d4e"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		raw       string
		id, state string
		ok        bool
	}{
		{string(raw), "3f9a0c1b2d4e", wire.RolloutCanary, true},
		{`{"state":"done","id":"x"}`, "", "", false},
		{`{"id":"x","clients":["a",{"b":[1]}],"state":"paused"}`, "x", "paused", true},
		{`[1,2]`, "", "", false},
		{`{"id":"x"`, "", "", false},
	}
	for _, tc := range tests {
		id, state, ok := rolloutHead([]byte(tc.raw))
		if id != tc.id || state != tc.state || ok != tc.ok {
			t.Errorf("rolloutHead(%s) = %q %q %v, want %q %q %v", tc.raw, id, state, ok, tc.id, tc.state, tc.ok)
		}
	}
}

// TestCreateNewJobs: jobs stored already are skipped, not a refusal of
// the batch; the others are stored queued, and JobsByID reads them.
func TestCreateNewJobs(t *testing.T) {
	s, _ := newStore(t)
	job := func(id string) JobRecord {
		return JobRecord{ID: id, Machine: "m1", Client: "acme", Name: "pc", Mode: wire.ModeElevated, CreatedBy: "admin",
			CreatedAt: t0, Expires: t0.Add(time.Hour), Update: &JobUpdate{Version: "0.3.0", Rollout: "3f9a0c1b2d4e", HealthWindowSec: 600}}
	}
	const a, b, c = "0000000000000000000000000000000a", "0000000000000000000000000000000b", "0000000000000000000000000000000c"
	if err := s.CreateJobs([]JobRecord{job(a)}); err != nil {
		t.Fatal(err)
	}
	skipped, err := s.CreateNewJobs([]JobRecord{job(a), job(b)})
	if err != nil || !slices.Equal(skipped, []string{a}) {
		t.Fatalf("CreateNewJobs = %v, %v", skipped, err)
	}
	got, err := s.JobsByID([]string{a, b, c})
	if err != nil || len(got) != 2 || got[1].ID != b || got[1].State != JobQueued {
		t.Errorf("JobsByID = %+v, %v", got, err)
	}
}
