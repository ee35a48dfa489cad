package alerts

import (
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestAlertCadences works the alert rules on fake time: each rule opens
// its alert on its own cadence, and a machine that recovers has none.
func TestAlertCadences(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	checked := func(d time.Duration) *store.CheckInMeta { return &store.CheckInMeta{Seq: 1, At: now.Add(-d)} }
	updates := make([]wire.PendingUpdate, 12)
	for i := range updates {
		updates[i] = wire.PendingUpdate{ID: "u", FirstSeen: at(time.Hour)}
	}
	ms := []store.Machine{
		{ID: "fine", Client: "c", Name: "fine", LastCheckIn: checked(time.Minute), AgentVersion: "1.2.0", Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}},
		{ID: "away", Client: "c", Name: "away", LastSeen: at(20 * time.Minute), LastCheckIn: checked(30 * time.Minute), AgentVersion: "1.2.0", Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}},
		{ID: "quiet", Client: "c", Name: "quiet", LastCheckIn: checked(4 * time.Hour), AgentVersion: "1.2.0", Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}},
		{ID: "new", Client: "c", Name: "new", EnrolledAt: now.Add(-2 * time.Hour)},
		{ID: "patchy", Client: "c", Name: "patchy", LastCheckIn: checked(time.Minute), AgentVersion: "1.2.0", PendingUpdates: updates, Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}},
		{ID: "old", Client: "c", Name: "old", LastCheckIn: checked(time.Minute), AgentVersion: "1.1.0", Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}},
	}
	online := map[string]bool{"fine": true, "quiet": true, "patchy": true, "old": true}
	reach := func(m *store.Machine) wire.Reachability { return wire.Reachability{Online: online[m.ID]} }
	rules := &Config{Offline: 15 * time.Minute, OverdueIntervals: 3, NeverCheckedIn: time.Hour, Policy: readiness.Policy{}.Resolved()}
	got := Evaluate(ms, reach, nil, now, rules)
	want := map[string]string{
		"away/" + wire.AlertOffline:         wire.CadenceReachability,
		"quiet/" + wire.AlertCheckInOverdue: wire.CadenceReadiness,
		"new/" + wire.AlertNeverCheckedIn:   wire.CadenceReadiness,
		"patchy/" + wire.AlertUpdates:       wire.CadenceReadiness,
		"old/" + wire.AlertAgentBehind:      wire.CadenceReadiness,
	}
	if len(got) != len(want) {
		t.Errorf("%d alerts, want %d: %+v", len(got), len(want), got)
	}
	for id, cadence := range want {
		if a, ok := got[id]; !ok || a.Cadence != cadence {
			t.Errorf("alert %s: %+v (want cadence %s)", id, a, cadence)
		}
	}
	// Ten minutes earlier the offline machine was within its threshold.
	if a := Evaluate(ms[1:2], reach, nil, now.Add(-10*time.Minute), rules); len(a) != 0 {
		t.Errorf("offline 10 minutes: %+v", a)
	}
	// Back online and checked in: nothing open, on either cadence.
	online["away"], ms[1].LastCheckIn = true, checked(0)
	ms[2].LastCheckIn = checked(time.Minute)
	if a := Evaluate(ms[1:3], reach, nil, now, rules); len(a) != 0 {
		t.Errorf("recovered machines: %+v", a)
	}
	// And the overdue alert opens again three intervals later.
	if a := Evaluate(ms[2:3], reach, nil, now.Add(3*time.Hour+2*time.Minute), rules); len(a) != 1 {
		t.Errorf("three intervals later: %+v", a)
	}
}
