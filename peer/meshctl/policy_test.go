package meshctl

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

func TestPolicySetArgs(t *testing.T) {
	quiet := func(sec int64) wire.AgentPolicy {
		return wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: sec}
	}
	tests := []struct {
		args []string
		want wire.PolicyArgs
		json bool
		err  string // part of the usage error, if any
	}{
		{args: []string{"--on-metered", "quiet", "--client", "acme"},
			want: wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "acme"}, AgentPolicy: quiet(0)}},
		{args: []string{"acme/pc-1", "--on-metered", "quiet", "--quiet-interval", "6h", "--json"},
			want: wire.PolicyArgs{PolicyScope: wire.PolicyScope{Machine: "acme/pc-1"}, AgentPolicy: quiet(6 * 3600)}, json: true},
		{args: []string{"--on-metered=normal", "12D3KooWabc"},
			want: wire.PolicyArgs{PolicyScope: wire.PolicyScope{Machine: "12D3KooWabc"}, AgentPolicy: wire.AgentPolicy{OnMetered: wire.MeteredNormal}}},
		{args: []string{"--client", "acme", "--on-metered", "quiet", "--quiet-interval", "15m"},
			want: wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "acme"}, AgentPolicy: quiet(900)}},
		{args: []string{"--client", "acme", "--on-metered", "quiet", "--quiet-interval", "168h"},
			want: wire.PolicyArgs{PolicyScope: wire.PolicyScope{Client: "acme"}, AgentPolicy: quiet(7 * 24 * 3600)}},
		{args: []string{"--client", "acme"}, err: "needs --on-metered quiet or --on-metered normal"},
		{args: []string{"--client", "acme", "--on-metered", "loud"}, err: `--on-metered "loud": want quiet or normal`},
		{args: []string{"--client", "acme", "--on-metered", "Quiet"}, err: "want quiet or normal"},
		{args: []string{"--client", "acme", "--on-metered", "quiet", "--quiet-interval", "5m"}, err: "--quiet-interval 5m0s: want whole seconds from 15m to 168h"},
		{args: []string{"--client", "acme", "--on-metered", "quiet", "--quiet-interval", "8d"}, err: "quiet-interval"},
		{args: []string{"--client", "acme", "--on-metered", "quiet", "--quiet-interval", "200h"}, err: "from 15m to 168h"},
		{args: []string{"--client", "acme", "--on-metered", "quiet", "--quiet-interval", "-1h"}, err: "from 15m to 168h"},
		{args: []string{"--client", "acme", "--on-metered", "quiet", "--quiet-interval", "20m500ms"}, err: "whole seconds"},
		{args: []string{"--client", "acme", "--on-metered", "normal", "--quiet-interval", "6h"}, err: "applies only with --on-metered quiet"},
		{args: []string{"--on-metered", "quiet"}, err: "takes --client C or one MACHINE"},
		{args: []string{"--on-metered", "quiet", "pc-1", "pc-2"}, err: "takes --client C or one MACHINE"},
		{args: []string{"--on-metered", "quiet", "--client", "acme", "pc-1"}, err: "not both"},
		{args: []string{"--on-metered", "quiet", "--client", "ac me"}, err: "only letters"},
		{args: []string{"--on-metered", "quiet", "--group", "x", "pc-1"}, err: "flag provided but not defined"},
	}
	for _, tc := range tests {
		a, asJSON, err := policySetArgs(tc.args)
		if tc.err != "" {
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("policySetArgs(%q) = %v, want a usage error with %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || asJSON != tc.json || a != tc.want {
			t.Errorf("policySetArgs(%q) = %+v, json %v, %v; want %+v", tc.args, a, asJSON, err, tc.want)
		}
	}
}

func TestPolicyClearArgs(t *testing.T) {
	tests := []struct {
		args []string
		want wire.PolicyScope
		json bool
		err  string
	}{
		{args: []string{"--client", "acme"}, want: wire.PolicyScope{Client: "acme"}},
		{args: []string{"acme/pc-1", "--json"}, want: wire.PolicyScope{Machine: "acme/pc-1"}, json: true},
		{args: nil, err: "takes --client C or one MACHINE"},
		{args: []string{"--client", "acme", "pc-1"}, err: "not both"},
		{args: []string{"--on-metered", "quiet", "pc-1"}, err: "flag provided but not defined"},
	}
	for _, tc := range tests {
		sc, asJSON, err := policyClearArgs(tc.args)
		if tc.err != "" {
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("policyClearArgs(%q) = %v, want a usage error with %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || asJSON != tc.json || sc != tc.want {
			t.Errorf("policyClearArgs(%q) = %+v, json %v, %v; want %+v", tc.args, sc, asJSON, err, tc.want)
		}
	}
}

// The commands are registered under "policy": a bad value is refused as
// a usage error before anything is dialled.
func TestPolicyCommandsRegistered(t *testing.T) {
	t.Setenv("READYMESH_HOME", testdir.New(t))
	for _, args := range [][]string{
		{"policy", "set", "--client", "acme", "--on-metered", "sometimes"},
		{"policy", "clear"},
		{"policy", "list", "extra"},
		{"policy", "ls", "extra"},
	} {
		var out bytes.Buffer
		if err := Run(t.Context(), args, &out); !errors.Is(err, ErrUsage) || strings.Contains(err.Error(), "unknown command") {
			t.Errorf("Run(%q) = %v, want the command's own usage error", args, err)
		}
	}
	var out bytes.Buffer
	if err := Run(t.Context(), []string{"help"}, &out); err != nil || !strings.Contains(out.String(), "policy set --on-metered quiet|normal") {
		t.Errorf("help does not list policy set: %v\n%s", err, out.String())
	}
}

func TestPrintPolicies(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ps := []wire.Policy{
		{Scope: "client:acme", Client: "acme", AgentPolicy: wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 6 * 3600},
			SetBy: "admin", SetAt: now.Add(-2 * time.Hour)},
		{Scope: "client:globex", Client: "globex", AgentPolicy: wire.AgentPolicy{OnMetered: wire.MeteredQuiet},
			SetBy: "admin", SetAt: now.Add(-5 * time.Minute)},
		{Scope: "machine:12D3KooWpc2", Client: "acme", Machine: "acme/pc-2", MachineID: "12D3KooWpc2",
			AgentPolicy: wire.AgentPolicy{OnMetered: wire.MeteredNormal}, SetBy: "ops", SetAt: now.Add(-time.Minute)},
		{Scope: "machine:12D3KooWgone", MachineID: "12D3KooWgone", AgentPolicy: wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 5400},
			SetBy: "admin", SetAt: now.Add(-time.Minute)},
	}
	var out bytes.Buffer
	if err := printPolicies(&out, ps, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("want a header and 4 rows, got:\n%s", out.String())
	}
	for i, want := range [][]string{
		{"APPLIES TO", "ON METERED", "QUIET CHECK-IN", "SET BY"},
		{"client acme", "quiet", "every 6h", "admin", "2h"},
		{"client globex", "quiet", "agent's own"},
		{"machine acme/pc-2", "normal", "-", "ops"},
		{"machine 12D3KooWgone", "quiet", "every 1h30m"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	out.Reset()
	if err := printPolicies(&out, nil, now); err != nil || !strings.Contains(out.String(), "no metered policy is set") {
		t.Errorf("empty list printed %q, %v", out.String(), err)
	}
}

func TestDescribePolicy(t *testing.T) {
	for p, want := range map[wire.AgentPolicy]string{
		{OnMetered: wire.MeteredNormal}:                       "normal on metered connections",
		{OnMetered: wire.MeteredQuiet}:                        "quiet on metered connections, checking in at the agent's own quiet interval",
		{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 900}:  "quiet on metered connections, checking in every 15m",
		{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 7200}: "quiet on metered connections, checking in every 2h",
	} {
		if got := describePolicy(p); got != want {
			t.Errorf("describePolicy(%+v) = %q, want %q", p, got, want)
		}
	}
}
