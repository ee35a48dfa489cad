package collect

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

func agentConfig() Config {
	approved := time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)
	return Config{
		AgentVersion: "1.2.3",
		Runtime:      wire.RuntimeConfig{CheckInIntervalSec: 300, HeartbeatSec: 15, ConsentPolicy: wire.ConsentWindow},
		Approval:     wire.Approval{Required: true, LastApprovedAt: &approved, ApprovedBy: "reception"},
	}
}

func TestFixtureWindowsTakesAgentFieldsFromConfig(t *testing.T) {
	fx, err := Fixture("testdata/windows.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := agentConfig()
	now := time.Date(2024, 6, 3, 12, 0, 0, 0, time.UTC)
	s := Collect(context.Background(), []Collector{Agent(cfg), fx}, now)
	if len(s.CollectorErrs) != 0 {
		t.Fatalf("collector errors: %+v", s.CollectorErrs)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.OS.Family != "windows" || s.Hostname != "FRONTDESK-01" || !s.CollectedAt.Equal(now) {
		t.Errorf("machine fields: %+v", s)
	}
	if len(s.PendingUpdates) != 2 || s.PendingUpdates[0].ID != "KB5034441" || !s.PendingUpdates[0].Security {
		t.Errorf("pending updates: %+v", s.PendingUpdates)
	}
	if s.AgentVersion != "1.2.3" || s.Runtime != cfg.Runtime || !s.Approval.Required || s.Approval.ApprovedBy != "reception" {
		t.Errorf("agent fields not taken from config: %q %+v %+v", s.AgentVersion, s.Runtime, s.Approval)
	}
}

func TestFixtureMacOSOverridesConfig(t *testing.T) {
	fx, err := Fixture("testdata/macos.json")
	if err != nil {
		t.Fatal(err)
	}
	s := Collect(context.Background(), []Collector{Agent(agentConfig()), fx}, time.Now())
	if s.AgentVersion != "0.9.0-fixture" || s.Runtime.ConsentPolicy != wire.ConsentSession {
		t.Errorf("fixture's agent fields lost: %q %+v", s.AgentVersion, s.Runtime)
	}
	// An approval present in the file wins even when it is the zero value.
	if s.Approval.Required || s.Approval.LastApprovedAt != nil {
		t.Errorf("approval: %+v", s.Approval)
	}
	if len(s.CollectorErrs) != 1 || s.CollectorErrs[0].Collector != "packages" {
		t.Errorf("collector errors: %+v", s.CollectorErrs)
	}
}

func TestFixtureCopiesPerCollect(t *testing.T) {
	fx, err := Fixture("testdata/windows.json")
	if err != nil {
		t.Fatal(err)
	}
	a := Collect(context.Background(), []Collector{fx}, time.Now())
	a.PendingUpdates[0].ID = "changed"
	b := Collect(context.Background(), []Collector{fx}, time.Now())
	if b.PendingUpdates[0].ID != "KB5034441" {
		t.Error("one snapshot's change reached the next")
	}
}

func TestFixtureErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr string
	}{
		{name: "malformed", body: `{"hostname": "x",`, wantErr: "decode"},
		{name: "not an object", body: `[1, 2]`, wantErr: "decode"},
		{name: "trailing data", body: `{"hostname": "x", "os": {"family": "linux"}} {}`, wantErr: "after the JSON"},
		{name: "unknown field", body: `{"hostname": "x", "os": {"family": "linux"}, "hostnme": "y"}`, wantErr: "unknown field"},
		{name: "wrong family", body: `{"hostname": "x", "os": {"family": "beos"}}`, wantErr: `os.family "beos"`},
		{name: "no family", body: `{"hostname": "x"}`, wantErr: "os.family"},
		{name: "no hostname", body: `{"os": {"family": "windows"}}`, wantErr: "hostname is empty"},
		{name: "bad consent policy", body: `{"hostname": "x", "os": {"family": "darwin"}, "runtime": {"consent_policy": "yolo"}}`, wantErr: "consent_policy"},
		{name: "update without id", body: `{"hostname": "x", "os": {"family": "windows"}, "pending_updates": [{"version": "1"}]}`, wantErr: "pending_updates[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(testdir.New(t), "fx.json")
			if err := os.WriteFile(p, []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Fixture(p)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), p) {
				t.Errorf("err = %v, want it to name %s and say %q", err, p, tt.wantErr)
			}
		})
	}
}

func TestFixtureMissingFile(t *testing.T) {
	_, err := Fixture(filepath.Join(testdir.New(t), "nope.json"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}
