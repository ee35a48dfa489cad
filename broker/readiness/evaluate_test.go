package readiness

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// readyMachine returns a machine that is ready under the default policy
// with newest agent 1.4.0: checked in 30 minutes ago with an hourly
// interval, current agent, no consent needed, no pending updates.
func readyMachine() store.Machine {
	return store.Machine{
		ID:         "12D3KooWready",
		Name:       "desk-01",
		Client:     "acme",
		EnrolledAt: now.Add(-90 * day),
		LastCheckIn: &store.CheckInMeta{
			Seq:         7,
			At:          now.Add(-30 * time.Minute),
			Reason:      "interval",
			CollectedAt: now.Add(-31 * time.Minute),
		},
		OS:           &wire.OS{Family: "linux", ID: "debian", Name: "Debian GNU/Linux 13"},
		AgentVersion: "1.4.0",
		Runtime:      wire.RuntimeConfig{CheckInIntervalSec: 3600, ConsentPolicy: wire.ConsentNever},
	}
}

// pending returns n pending updates named u1…un, first seen d ago.
func pending(n int, d time.Duration) []wire.PendingUpdate {
	ups := make([]wire.PendingUpdate, n)
	for i := range ups {
		ups[i] = wire.PendingUpdate{ID: "u" + strconv.Itoa(i+1), FirstSeen: ago(d)}
	}
	return ups
}

func checkedInAgo(d time.Duration) func(*store.Machine) {
	return func(m *store.Machine) { m.LastCheckIn.At = now.Add(-d) }
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*store.Machine)
		newest  string // "" means 1.4.0; "-" means none
		policy  Policy
		state   string
		reasons []string
	}{
		{name: "ready", edit: func(*store.Machine) {}, state: wire.StateReady, reasons: []string{}},

		// incomplete
		{name: "never checked in", edit: func(m *store.Machine) {
			*m = store.Machine{ID: "x", Name: "new", Client: "acme", EnrolledAt: now.Add(-time.Hour)}
		}, state: wire.StateIncomplete, reasons: []string{"never checked in"}},
		{name: "no OS", edit: func(m *store.Machine) { m.OS = nil },
			state: wire.StateIncomplete, reasons: []string{"last check-in reported no operating system"}},

		// stale: limit is 2×interval + grace
		{name: "stale", edit: checkedInAgo(3*time.Hour + 10*time.Minute),
			state: wire.StateStale, reasons: []string{"no check-in for 3h10m (expected every 1h)"}},
		{name: "exactly at stale limit", edit: checkedInAgo(2*time.Hour + 10*time.Minute),
			state: wire.StateReady, reasons: []string{}},
		{name: "just past stale limit", edit: checkedInAgo(2*time.Hour + 10*time.Minute + time.Nanosecond),
			state: wire.StateStale, reasons: []string{"no check-in for 2h10m (expected every 1h)"}},
		{name: "reported interval", edit: func(m *store.Machine) {
			m.Runtime.CheckInIntervalSec = 300
			m.LastCheckIn.At = now.Add(-21 * time.Minute)
		}, state: wire.StateStale, reasons: []string{"no check-in for 21m (expected every 5m)"}},
		{name: "unreported interval uses default", edit: func(m *store.Machine) {
			m.Runtime.CheckInIntervalSec = 0
			m.LastCheckIn.At = now.Add(-2*time.Hour - 11*time.Minute)
		}, state: wire.StateStale, reasons: []string{"no check-in for 2h11m (expected every 1h)"}},
		{name: "policy default interval", edit: func(m *store.Machine) {
			m.Runtime.CheckInIntervalSec = 0
			m.LastCheckIn.At = now.Add(-2*time.Hour - 11*time.Minute)
		}, policy: Policy{DefaultInterval: 2 * time.Hour}, state: wire.StateReady, reasons: []string{}},
		{name: "policy grace", edit: checkedInAgo(2*time.Hour + 59*time.Minute),
			policy: Policy{Grace: time.Hour}, state: wire.StateReady, reasons: []string{}},
		{name: "check-in in the future", edit: checkedInAgo(-time.Hour),
			state: wire.StateReady, reasons: []string{}},

		// consent-required
		{name: "approval never given", edit: func(m *store.Machine) { m.Approval = wire.Approval{Required: true} },
			state: wire.StateConsentRequired, reasons: []string{"approval required but never given"}},
		{name: "approval without expiry", edit: func(m *store.Machine) {
			m.Approval = wire.Approval{Required: true, LastApprovedAt: ago(time.Hour)}
		}, state: wire.StateConsentRequired, reasons: []string{"approval required but its expiry is unknown"}},
		{name: "approval expired", edit: func(m *store.Machine) {
			m.Approval = wire.Approval{Required: true, LastApprovedAt: ago(3 * day), ExpiresAt: ago(26 * time.Hour)}
		}, state: wire.StateConsentRequired, reasons: []string{"approval expired 2026-11-01 10:00 UTC"}},
		{name: "approval expires exactly now", edit: func(m *store.Machine) {
			m.Approval = wire.Approval{Required: true, LastApprovedAt: ago(day), ExpiresAt: ago(0)}
		}, state: wire.StateConsentRequired, reasons: []string{"approval expired 2026-11-02 12:00 UTC"}},
		{name: "approval valid", edit: func(m *store.Machine) {
			m.Approval = wire.Approval{Required: true, LastApprovedAt: ago(day), ExpiresAt: ago(-time.Nanosecond)}
		}, state: wire.StateReady, reasons: []string{}},
		{name: "expired approval not required", edit: func(m *store.Machine) {
			m.Approval = wire.Approval{LastApprovedAt: ago(3 * day), ExpiresAt: ago(day)}
		}, state: wire.StateReady, reasons: []string{}},

		// degraded
		{name: "agent behind", edit: func(m *store.Machine) { m.AgentVersion = "1.2.0" },
			state: wire.StateDegraded, reasons: []string{"agent 1.2.0 is behind 1.4.0"}},
		{name: "agent pre-release behind release", edit: func(m *store.Machine) { m.AgentVersion = "v1.4.0-rc2" },
			state: wire.StateDegraded, reasons: []string{"agent v1.4.0-rc2 is behind 1.4.0"}},
		{name: "agent ahead of newest", edit: func(m *store.Machine) { m.AgentVersion = "1.10.0" },
			state: wire.StateReady, reasons: []string{}},
		{name: "no newest known", edit: func(m *store.Machine) { m.AgentVersion = "1.2.0" }, newest: "-",
			state: wire.StateReady, reasons: []string{}},
		{name: "pending at limit", edit: func(m *store.Machine) { m.PendingUpdates = pending(10, day) },
			state: wire.StateReady, reasons: []string{}},
		{name: "pending over limit", edit: func(m *store.Machine) { m.PendingUpdates = pending(14, day) },
			state: wire.StateDegraded, reasons: []string{"14 pending updates (limit 10)"}},
		{name: "policy pending limit", edit: func(m *store.Machine) { m.PendingUpdates = pending(3, day) },
			policy: Policy{MaxPendingUpdates: 2}, state: wire.StateDegraded, reasons: []string{"3 pending updates (limit 2)"}},
		{name: "pending exactly at age limit", edit: func(m *store.Machine) { m.PendingUpdates = pending(1, 30*day) },
			state: wire.StateReady, reasons: []string{}},
		{name: "one pending too long", edit: func(m *store.Machine) {
			m.PendingUpdates = []wire.PendingUpdate{
				{ID: "curl", FirstSeen: ago(2 * day)},
				{ID: "KB5034441", FirstSeen: ago(45*day + 3*time.Hour)},
				{ID: "tzdata"}, // FirstSeen unknown: not counted
			}
		}, state: wire.StateDegraded, reasons: []string{"update KB5034441 pending for 45d3h (limit 30d)"}},
		{name: "several pending too long", edit: func(m *store.Machine) {
			m.PendingUpdates = []wire.PendingUpdate{
				{ID: "openssl", FirstSeen: ago(31 * day)},
				{ID: "libc6", FirstSeen: ago(40 * day)},
				{ID: "curl", FirstSeen: ago(2 * day)},
				{ID: "sudo", FirstSeen: ago(35 * day)},
			}
		}, state: wire.StateDegraded, reasons: []string{"3 updates pending for more than 30d (oldest libc6, 40d)"}},
		{name: "policy pending age", edit: func(m *store.Machine) { m.PendingUpdates = pending(1, 8*day) },
			policy: Policy{MaxPendingAge: 7 * day}, state: wire.StateDegraded, reasons: []string{"update u1 pending for 8d (limit 7d)"}},

		// precedence: the first state wins, every reason is listed
		{name: "stale and consent", edit: func(m *store.Machine) {
			m.LastCheckIn.At = now.Add(-5 * time.Hour)
			m.Approval = wire.Approval{Required: true}
		}, state: wire.StateStale, reasons: []string{
			"no check-in for 5h (expected every 1h)",
			"approval required but never given",
		}},
		{name: "consent and degraded", edit: func(m *store.Machine) {
			m.Approval = wire.Approval{Required: true}
			m.AgentVersion = "1.3.9"
		}, state: wire.StateConsentRequired, reasons: []string{
			"approval required but never given",
			"agent 1.3.9 is behind 1.4.0",
		}},
		{name: "stale and degraded", edit: func(m *store.Machine) {
			m.LastCheckIn.At = now.Add(-3 * day)
			m.PendingUpdates = pending(11, time.Hour)
		}, state: wire.StateStale, reasons: []string{
			"no check-in for 3d (expected every 1h)",
			"11 pending updates (limit 10)",
		}},
		{name: "everything at once", edit: func(m *store.Machine) {
			m.OS = nil
			m.LastCheckIn.At = now.Add(-50*time.Hour - 30*time.Minute)
			m.Approval = wire.Approval{Required: true, LastApprovedAt: ago(40 * day), ExpiresAt: ago(39 * day)}
			m.AgentVersion = "1.2.0"
			m.PendingUpdates = pending(12, 31*day)
		}, state: wire.StateIncomplete, reasons: []string{
			"last check-in reported no operating system",
			"no check-in for 2d2h (expected every 1h)",
			"approval expired 2026-09-24 12:00 UTC",
			"agent 1.2.0 is behind 1.4.0",
			"12 pending updates (limit 10)",
			"12 updates pending for more than 30d (oldest u1, 31d)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := readyMachine()
			tt.edit(&m)
			newest := "1.4.0"
			switch tt.newest {
			case "-":
				newest = ""
			case "":
			default:
				newest = tt.newest
			}
			r := Evaluate(&m, newest, now, tt.policy)
			if r.State != tt.state {
				t.Errorf("state = %q, want %q", r.State, tt.state)
			}
			if !reflect.DeepEqual(r.Reasons, tt.reasons) {
				t.Errorf("reasons = %q\nwant      %q", r.Reasons, tt.reasons)
			}
		})
	}
}

func TestEvaluateFields(t *testing.T) {
	m := readyMachine()
	m.AgentVersion = "1.3.0"
	m.PendingUpdates = pending(2, day)
	m.Approval = wire.Approval{Required: true, LastApprovedAt: ago(time.Hour), ExpiresAt: ago(-time.Hour), ApprovedBy: "ann"}
	r := Evaluate(&m, "1.4.0", now, Policy{})

	age := (31 * time.Minute).Seconds()
	want := wire.Readiness{
		State:              wire.StateDegraded,
		Reasons:            []string{"agent 1.3.0 is behind 1.4.0"},
		EnrolledAt:         m.EnrolledAt,
		LastCheckIn:        &m.LastCheckIn.At,
		CheckInReason:      "interval",
		CheckInSeq:         7,
		SnapshotAgeSec:     &age,
		AgentVersion:       "1.3.0",
		NewestAgentVersion: "1.4.0",
		AgentBehind:        true,
		OS:                 m.OS,
		PendingUpdates:     m.PendingUpdates,
		Approval:           m.Approval,
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("Evaluate =\n%+v\nwant\n%+v", r, want)
	}
}

// TestEvaluateNeverCheckedInJSON checks that a machine with nothing stored
// still encodes every field, with lists as [] and unknowns as null.
func TestEvaluateNeverCheckedInJSON(t *testing.T) {
	m := store.Machine{ID: "x", Name: "new", Client: "acme", EnrolledAt: now}
	b, err := json.Marshal(Evaluate(&m, "1.4.0", now, Policy{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"state":"incomplete"`,
		`"reasons":["never checked in"]`,
		`"pending_updates":[]`,
		`"last_check_in":null`,
		`"snapshot_age_s":null`,
		`"agent_behind":false`,
		`"os":null`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}

	ready := readyMachine()
	b, _ = json.Marshal(Evaluate(&ready, "1.4.0", now, Policy{}))
	if !strings.Contains(string(b), `"reasons":[]`) || !strings.Contains(string(b), `"pending_updates":[]`) {
		t.Errorf("ready machine JSON should have empty lists:\n%s", b)
	}
}

func TestZeroPolicyIsDefault(t *testing.T) {
	f := genFleet(2000, 3)
	for i := range f.machines {
		m := &f.machines[i]
		got := Evaluate(m, "1.4.0", now, Policy{})
		want := Evaluate(m, "1.4.0", now, DefaultPolicy())
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("machine %d: zero policy gives %+v, default gives %+v", i, got, want)
		}
	}
	if got := (Policy{Grace: -1, MaxPendingUpdates: -3}).resolved(); got != DefaultPolicy() {
		t.Errorf("negative fields resolve to %+v, want defaults", got)
	}
}

func TestCard(t *testing.T) {
	m := readyMachine()
	reach := wire.Reachability{Online: true, Since: ago(time.Hour), Broker: "eu-west-1"}
	c := Card(&m, reach, "1.4.0", now, Policy{})
	if c.ID != m.ID || c.Name != m.Name || c.Client != m.Client {
		t.Errorf("identity = %q %q %q", c.ID, c.Name, c.Client)
	}
	if !reflect.DeepEqual(c.Reachability, reach) {
		t.Errorf("reachability = %+v, want %+v", c.Reachability, reach)
	}
	if c.Session != nil || c.Snapshot != nil || c.History != nil {
		t.Error("session, snapshot and history must be empty")
	}
	if c.Readiness.State != wire.StateReady {
		t.Errorf("state = %q", c.Readiness.State)
	}
}

func TestSpan(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{999 * time.Millisecond, "0s"},
		{45 * time.Second, "45s"},
		{90 * time.Second, "1m30s"},
		{5 * time.Minute, "5m"},
		{time.Hour, "1h"},
		{3*time.Hour + 10*time.Minute + 59*time.Second, "3h10m"},
		{24 * time.Hour, "1d"},
		{30*day + 5*time.Hour + 7*time.Minute, "30d5h"},
	}
	for _, tt := range tests {
		if got := string(appendSpan(nil, tt.d)); got != tt.want {
			t.Errorf("appendSpan(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestUpdatesUnknown: a machine whose updates collector failed has its
// pending updates unknown, with the collector's reason, never a silent
// empty list; other collectors' errors do not make them unknown.
func TestUpdatesUnknown(t *testing.T) {
	m := readyMachine()
	m.CollectorErrs = []wire.CollectorError{{Collector: "packages", Error: "dpkg locked"}}
	if r := Evaluate(&m, "1.4.0", now, Policy{}); r.UpdatesUnknown != "" {
		t.Fatalf("packages failed, updates said unknown: %q", r.UpdatesUnknown)
	}
	m.CollectorErrs = append(m.CollectorErrs, wire.CollectorError{Collector: "updates",
		Error: "pending updates: Windows Update Agent: not done after 1m0s"})
	r := Evaluate(&m, "1.4.0", now, Policy{})
	if !strings.Contains(r.UpdatesUnknown, "Windows Update Agent") || len(r.PendingUpdates) != 0 {
		t.Fatalf("updates unknown = %q, pending %v", r.UpdatesUnknown, r.PendingUpdates)
	}
}
