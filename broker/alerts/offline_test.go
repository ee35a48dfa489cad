package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestOfflineReasons works the offline alert per reason on fake time:
// each reason has its own threshold and wording, counted from when the
// machine went away, and a machine with no reason counts as lost.
func TestOfflineReasons(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	tests := []struct {
		name   string
		cfg    Config
		rc     wire.Reachability
		seen   time.Duration // stored LastSeen, before now
		open   bool
		detail []string // in the detail when open
	}{
		{name: "lost past 15m", rc: wire.Reachability{OfflineReason: wire.AwayLost, OfflineSince: ago(20 * time.Minute)}, seen: 20 * time.Minute,
			open: true, detail: []string{"lost since 2026-12-06T11:40:00Z", "(threshold 15m0s)", "no notice, the network or power may be gone"}},
		{name: "lost within 15m", rc: wire.Reachability{OfflineReason: wire.AwayLost, OfflineSince: ago(10 * time.Minute)}, seen: 10 * time.Minute},
		{name: "no reason is lost, from LastSeen", rc: wire.Reachability{}, seen: 20 * time.Minute,
			open: true, detail: []string{"lost since 2026-12-06T11:40:00Z"}},
		{name: "asleep a week: never by default", rc: wire.Reachability{OfflineReason: wire.AwayAsleep, OfflineSince: ago(7 * 24 * time.Hour)}, seen: 7 * 24 * time.Hour},
		{name: "quiet a day: never by default", rc: wire.Reachability{OfflineReason: wire.AwayQuiet, OfflineSince: ago(24 * time.Hour)}, seen: time.Hour},
		{name: "stopped 50m", rc: wire.Reachability{OfflineReason: wire.AwayStopped, OfflineSince: ago(50 * time.Minute)}, seen: 50 * time.Minute},
		{name: "stopped 70m", rc: wire.Reachability{OfflineReason: wire.AwayStopped, OfflineSince: ago(70 * time.Minute), Detail: "service stop"}, seen: 70 * time.Minute,
			open: true, detail: []string{"agent stopped since", "(threshold 1h0m0s)", "not been started again", "(service stop)"}},
		{name: "shutdown 23h", rc: wire.Reachability{OfflineReason: wire.AwayShutdown, OfflineSince: ago(23 * time.Hour)}, seen: 23 * time.Hour},
		{name: "shutdown 25h", rc: wire.Reachability{OfflineReason: wire.AwayShutdown, OfflineSince: ago(25 * time.Hour)}, seen: 25 * time.Hour,
			open: true, detail: []string{"shut down since 2026-12-05T11:00:00Z (threshold 24h0m0s): it has not booted again"}},
		// OfflineSince, when the brokers know it, wins over LastSeen.
		{name: "OfflineSince before LastSeen", rc: wire.Reachability{OfflineReason: wire.AwayLost, OfflineSince: ago(30 * time.Minute)}, seen: 5 * time.Minute,
			open: true, detail: []string{"lost since 2026-12-06T11:30:00Z"}},
		{name: "asleep, threshold set", cfg: Config{Away: Away{Asleep: 8 * time.Hour}},
			rc: wire.Reachability{OfflineReason: wire.AwayAsleep, OfflineSince: ago(9 * time.Hour), Detail: "lid closed"}, seen: 9 * time.Hour,
			open: true, detail: []string{"asleep since", "(threshold 8h0m0s)", "(lid closed)"}},
		{name: "stopped, none", cfg: Config{Away: Away{Stopped: Never}},
			rc: wire.Reachability{OfflineReason: wire.AwayStopped, OfflineSince: ago(30 * 24 * time.Hour)}, seen: 30 * 24 * time.Hour},
		{name: "shutdown, shorter", cfg: Config{Away: Away{Shutdown: 2 * time.Hour}},
			rc: wire.Reachability{OfflineReason: wire.AwayShutdown, OfflineSince: ago(3 * time.Hour)}, seen: 3 * time.Hour, open: true},
		{name: "online", rc: wire.Reachability{Online: true}, seen: 48 * time.Hour},
		{name: "never seen", rc: wire.Reachability{OfflineReason: wire.AwayLost}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := store.Machine{ID: "m1", Client: "c", Name: "pc", LastCheckIn: &store.CheckInMeta{Seq: 1, At: now},
				AgentVersion: "1.0.0", Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}}
			if tt.seen > 0 {
				m.LastSeen = ago(tt.seen)
			}
			cfg := tt.cfg
			cfg.Policy = readiness.Policy{}.Resolved()
			got := Evaluate([]store.Machine{m}, func(*store.Machine) wire.Reachability { return tt.rc }, nil, now, &cfg)
			a, open := got["m1/"+wire.AlertOffline]
			if open != tt.open {
				t.Fatalf("offline alert open %v, want %v: %+v", open, tt.open, got)
			}
			if len(got) != map[bool]int{true: 1, false: 0}[open] {
				t.Errorf("other alerts opened: %+v", got)
			}
			for _, w := range tt.detail {
				if !strings.Contains(a.Detail, w) {
					t.Errorf("detail %q lacks %q", a.Detail, w)
				}
			}
			if open && tt.rc.OfflineSince != nil && !a.Since.Equal(*tt.rc.OfflineSince) {
				t.Errorf("since %s, want %s", a.Since, tt.rc.OfflineSince)
			}
		})
	}
}

// TestOfflineReasonChanges follows one machine through reasons that change
// while it is away: the alert keeps its identity and first Since while
// its reason's threshold is passed, and resolves when a reason with none
// takes over.
func TestOfflineReasonChanges(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	went := now.Add(-3 * time.Hour)
	m := []store.Machine{{ID: "m1", Client: "c", Name: "pc", LastSeen: &went, EnrolledAt: went,
		LastCheckIn: &store.CheckInMeta{Seq: 1, At: now}, Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}}}
	rc := wire.Reachability{OfflineReason: wire.AwayAsleep, OfflineSince: &went, Detail: "lid closed"}
	a := New(Config{Now: func() time.Time { return now }}, nil, nil, nil)
	step := func(want string) wire.Alert {
		t.Helper()
		cur := Evaluate(m, func(*store.Machine) wire.Reachability { return rc }, nil, now, &a.cfg)
		a.mu.Lock()
		events := a.changesLocked(cur, now)
		a.open = cur
		a.mu.Unlock()
		var got []string
		for _, e := range events {
			got = append(got, e.Event)
		}
		if strings.Join(got, ",") != want {
			t.Fatalf("%s: events %v, want %q", rc.OfflineReason, got, want)
		}
		return cur["m1/"+wire.AlertOffline]
	}
	step("") // asleep 3 h: no alert
	rc.OfflineReason, rc.Detail = wire.AwayLost, "heartbeats missed"
	if al := step("opened"); !al.Since.Equal(went) || !strings.Contains(al.Detail, "lost since") {
		t.Errorf("turned lost: %+v", al)
	}
	// A stop notice that arrives late (gossip) keeps the alert open, as
	// 3 h is past the stopped threshold too, with its own words.
	now = now.Add(time.Minute)
	rc.OfflineReason, rc.Detail = wire.AwayStopped, ""
	if al := step(""); !al.Since.Equal(went) || !strings.Contains(al.Detail, "agent stopped since") {
		t.Errorf("turned stopped: %+v", al)
	}
	rc.OfflineReason = wire.AwayAsleep
	step("resolved")
}

// TestQuietCheckInNotOverdue: a machine quiet on a metered connection
// checks in on its quiet cadence, so its check-in is overdue only one
// interval after the quiet check-in the overlay expects.
func TestQuietCheckInNotOverdue(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	last := now.Add(-4 * time.Hour)
	next := now.Add(2 * time.Hour)
	m := []store.Machine{{ID: "m1", Client: "c", Name: "pc", LastSeen: &last, AgentVersion: "1.0.0",
		LastCheckIn: &store.CheckInMeta{Seq: 1, At: last}, Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}}}
	rc := wire.Reachability{OfflineReason: wire.AwayQuiet, OfflineSince: &last, ExpectedBack: &next}
	cfg := Config{Policy: readiness.Policy{}.Resolved()}
	cfg.setDefaults()
	reach := func(*store.Machine) wire.Reachability { return rc }
	if got := Evaluate(m, reach, nil, now, &cfg); len(got) != 0 {
		t.Errorf("quiet, next check-in in 2h: %+v", got)
	}
	got := Evaluate(m, reach, nil, now.Add(3*time.Hour+time.Minute), &cfg)
	a, ok := got["m1/"+wire.AlertCheckInOverdue]
	if len(got) != 1 || !ok || !strings.Contains(a.Detail, "quiet on a metered connection") {
		t.Errorf("quiet, an interval past the expected check-in: %+v", got)
	}
	// Lost instead of quiet: overdue at three intervals, as before.
	rc.OfflineReason = wire.AwayLost
	if got := Evaluate(m, reach, nil, now, &cfg); len(got) != 2 {
		t.Errorf("lost 4h: want the offline and overdue alerts, got %+v", got)
	}
}

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "1h", want: time.Hour},
		{in: "90m", want: 90 * time.Minute},
		{in: "none", want: Never},
		{in: "Never", want: Never},
		{in: "off", want: Never},
		{in: "-5m", want: Never},
		{in: "0", want: 0},
		{in: "", err: true},
		{in: "soon", err: true},
		{in: "24", err: true},
	}
	for _, tt := range tests {
		got, err := ParseThreshold(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseThreshold(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	var d time.Duration
	f := ThresholdFlag(&d)
	if err := f.Set("none"); err != nil || d != Never || f.String() != "none" {
		t.Errorf("flag none: %v, %v, %q", d, err, f.String())
	}
	if err := f.Set("2h"); err != nil || d != 2*time.Hour || f.String() != "2h0m0s" || f.Get() != "2h0m0s" {
		t.Errorf("flag 2h: %v, %v, %q", d, err, f.String())
	}
	if err := f.Set("x"); err == nil || d != 2*time.Hour {
		t.Errorf("flag x: %v, %v (want an error and the value kept)", d, err)
	}
}
