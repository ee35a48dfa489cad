package meshctl

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

func TestRolloutArgs(t *testing.T) {
	tests := []struct {
		args []string
		want wire.RolloutArgs
		json bool
		err  string // part of the usage error, if any
	}{
		{args: []string{"0.3.0", "--all"},
			want: wire.RolloutArgs{Version: "0.3.0", All: true, CanaryPct: 25, HealthWindowSec: 900, MaxParallel: 50, FailPct: new(10)}},
		{args: []string{"--client", "acme", "0.3.0", "--client", "globex", "--canary", "10%", "--health-window", "30m",
			"--max-parallel", "5", "--fail", "20", "--rollback", "--requires-consent", "--json"},
			want: wire.RolloutArgs{Version: "0.3.0", Clients: []string{"acme", "globex"}, CanaryPct: 10, HealthWindowSec: 1800,
				MaxParallel: 5, FailPct: new(20), Rollback: true, RequiresConsent: true}, json: true},
		{args: []string{"0.3.0", "--all", "--canary", "0%"},
			want: wire.RolloutArgs{Version: "0.3.0", All: true, HealthWindowSec: 900, MaxParallel: 50, FailPct: new(10)}},
		{args: []string{"0.3.0", "--all", "--fail", "0%"},
			want: wire.RolloutArgs{Version: "0.3.0", All: true, CanaryPct: 25, HealthWindowSec: 900, MaxParallel: 50, FailPct: new(0)}},
		{args: []string{"0.3.0"}, err: "--client C"},
		{args: []string{"0.3.0", "--all", "--client", "acme"}, err: "--client C"},
		{args: []string{"--all"}, err: "takes VERSION"},
		{args: []string{"latest", "--all"}, err: "starting with a digit"},
		{args: []string{"0.3.0", "--all", "--canary", "120%"}, err: "--canary"},
		{args: []string{"0.3.0", "--all", "--canary", "a lot"}, err: "--canary"},
		{args: []string{"0.3.0", "--all", "--fail", "101%"}, err: "--fail"},
		{args: []string{"0.3.0", "--all", "--fail", "-1"}, err: "--fail"},
		{args: []string{"0.3.0", "--all", "--health-window", "1s"}, err: "health window"},
	}
	for _, tc := range tests {
		a, asJSON, err := rolloutArgs(tc.args)
		if tc.err != "" {
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("rolloutArgs(%q) = %v, want a usage error with %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || asJSON != tc.json || a.Version != tc.want.Version || !slices.Equal(a.Clients, tc.want.Clients) ||
			a.All != tc.want.All || a.CanaryPct != tc.want.CanaryPct || a.HealthWindowSec != tc.want.HealthWindowSec ||
			a.MaxParallel != tc.want.MaxParallel || a.FailPct == nil || *a.FailPct != *tc.want.FailPct || a.Rollback != tc.want.Rollback ||
			a.RequiresConsent != tc.want.RequiresConsent {
			t.Errorf("rolloutArgs(%q) = %+v, json %v, %v; want %+v", tc.args, a, asJSON, err, tc.want)
		}
	}
}

func TestRolloutStatusText(t *testing.T) {
	r := &wire.Rollout{ID: "3f9a0c1b2d4e", Version: "0.3.0", State: wire.RolloutPaused, CreatedBy: "admin",
		CanaryPct: 25, HealthWindowSec: 900, MaxParallel: 50, FailPct: 0,
		PausedReason: "canary acme/pc-3 rolled-back: exited with status 2 three times at start",
		Counts:       map[string]int{wire.StepRolledBack: 1, wire.StepWaiting: 2, wire.StepUpdated: 0},
		Machines: []wire.RolloutMachine{
			{Machine: "acme/pc-3", Wave: 0, Step: wire.StepRolledBack, From: "0.2.0", Job: "0123456789abcdef0123456789abcdef",
				Detail: "exited with status 2 three times at start"},
			{Machine: "acme/pc-4", Wave: 1, Step: wire.StepWaiting, From: "0.2.0"},
			{Machine: "acme/pc-5", Wave: 1, Step: wire.StepWaiting},
		}}
	var out bytes.Buffer
	if err := printRolloutStatus(&out, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 8 {
		t.Fatalf("want a header of 4 lines, a table header and 3 rows, got:\n%s", out.String())
	}
	for i, want := range [][]string{
		{"rollout 3f9a0c1b2d4e: 0.3.0, paused", "by admin"},
		{"plan: canary 25%, health window 15m0s, max 50 at once, pause at the first failure"},
		{"why: canary acme/pc-3 rolled-back"},
		{"2 waiting, 1 rolled-back"},
		{"MACHINE", "WAVE", "STEP", "DETAIL"},
		{"acme/pc-3", "canary", "rolled-back", "0.2.0", "0123456789ab", "exited with status 2"},
		{"acme/pc-4", "1", "waiting", "0.2.0"},
		{"acme/pc-5", "1", "waiting", " - "},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if strings.Contains(lines[3], "updated") {
		t.Errorf("counts line %q shows a zero count", lines[3])
	}
}

// TestPauseWords: a threshold of 0% reads as the first failure, not as
// "above 0%".
func TestPauseWords(t *testing.T) {
	for pct, want := range map[int]string{0: "pause at the first failure", 1: "pause above 1% failed",
		10: "pause above 10% failed", 100: "pause above 100% failed"} {
		if got := pauseWords(pct); got != want {
			t.Errorf("pauseWords(%d) = %q, want %q", pct, got, want)
		}
	}
}

func TestRolloutListText(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	rs := []wire.Rollout{{ID: "3f9a0c1b2d4e", Version: "0.3.0", State: wire.RolloutRolling, CreatedBy: "admin", CreatedAt: now.Add(-time.Hour),
		Counts: map[string]int{wire.StepUpdated: 3, wire.StepFailed: 1, wire.StepRolledBack: 1, wire.StepQueued: 5}}}
	var out bytes.Buffer
	if err := printRollouts(&out, rs, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and a row:\n%s", out.String())
	}
	fields := strings.Fields(lines[1])
	if !slices.Equal(fields[:7], []string{"3f9a0c1b2d4e", "0.3.0", "rolling", "10", "3", "2", "admin"}) {
		t.Errorf("row %q", lines[1])
	}
}

func TestRolloutVerbsNeedLogin(t *testing.T) {
	t.Setenv("READYMESH_HOME", testdir.New(t))
	for _, args := range [][]string{{"rollout", "ls"}, {"rollout", "status", "3f9a"}, {"rollout", "pause", "3f9a"},
		{"rollout", "start", "0.3.0", "--all"}} {
		var out bytes.Buffer
		if err := Run(t.Context(), args, &out); err == nil || !strings.Contains(err.Error(), "not logged in") {
			t.Errorf("%q = %v, want 'not logged in'", args, err)
		}
	}
	var out bytes.Buffer
	if err := Run(t.Context(), []string{"rollout", "resume"}, &out); !errors.Is(err, ErrUsage) {
		t.Errorf("rollout resume without an ID = %v, want a usage error", err)
	}
}
