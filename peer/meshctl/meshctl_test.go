package meshctl

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

func TestParseInterleavedFlags(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		clients string
		err     bool
	}{
		{args: []string{"alice", "--clients", "a,b"}, pos: []string{"alice"}, clients: "a,b"},
		{args: []string{"--clients", "a", "alice"}, pos: []string{"alice"}, clients: "a"},
		{args: []string{"--clients", "a"}, err: true},                     // NAME missing
		{args: []string{"alice", "bob"}, err: true},                       // one too many
		{args: []string{"alice", "--nope"}, err: true},                    // unknown flag
		{args: []string{"alice", "--clients"}, err: true},                 // flag without value
		{args: []string{"--", "-dash-name"}, pos: []string{"-dash-name"}}, // -- ends flags
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("technicians add", flag.ContinueOnError)
		clients := fs.String("clients", "", "")
		pos, err := parse(fs, tt.args, "NAME")
		if tt.err {
			if !errors.Is(err, ErrUsage) {
				t.Errorf("parse(%q) = %v, want a usage error", tt.args, err)
			}
			continue
		}
		if err != nil || strings.Join(pos, " ") != strings.Join(tt.pos, " ") || *clients != tt.clients {
			t.Errorf("parse(%q) = %q, clients %q, %v; want %q, %q", tt.args, pos, *clients, err, tt.pos, tt.clients)
		}
	}
}

func TestTableKeepsReadinessAndReachabilityApart(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	checked := now.Add(-90 * time.Minute)
	seen := now.Add(-5 * time.Minute)
	cards := []wire.Card{
		{Client: "acme", Name: "fs01", Readiness: wire.Readiness{State: wire.StateReady, LastCheckIn: &checked,
			AgentVersion: "0.1.0", OS: &wire.OS{Name: "Windows Server 2019"}},
			Reachability: wire.Reachability{Online: false, LastSeen: &seen}},
		{Client: "acme", Name: "laptop", Readiness: wire.Readiness{State: wire.StateConsentRequired,
			Reasons: []string{"approval expired"}, AgentVersion: "0.0.9", AgentBehind: true},
			Reachability: wire.Reachability{Online: true}},
	}
	var out bytes.Buffer
	if err := printTable(&out, cards, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows, got:\n%s", out.String())
	}
	for _, want := range []string{"READINESS", "REACHABILITY"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("header %q lacks %s", lines[0], want)
		}
	}
	// A ready machine that is offline shows both facts, each in words.
	for _, want := range []string{"ready", "○ offline, seen 5m ago", "1h30m ago", "Windows Server 2019"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	for _, want := range []string{"consent-required", "● online", "0.0.9 (behind)", "approval expired", "never"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("row %q lacks %q", lines[2], want)
		}
	}
}

func TestEmptyListsPrintAsJSONArrays(t *testing.T) {
	var out bytes.Buffer
	var cards []wire.Card
	if err := printJSON(&out, nonNil(cards)); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "[]" {
		t.Fatalf("empty list printed as %q, want []", out.String())
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	t.Setenv("READYMESH_HOME", testdir.New(t))
	var out bytes.Buffer
	if err := Run(t.Context(), []string{"frobnicate"}, &out); !errors.Is(err, ErrUsage) {
		t.Fatalf("Run(frobnicate) = %v, want a usage error", err)
	}
	if err := Run(t.Context(), []string{"machines"}, &out); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("machines before login = %v, want 'not logged in'", err)
	}
}
