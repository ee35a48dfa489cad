package collect

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

func TestCollectKeepsGoing(t *testing.T) {
	cs := []Collector{
		newFunc("first", func(_ context.Context, s *wire.Snapshot) error { s.Hostname = "h"; return nil }),
		newFunc("fails", func(_ context.Context, s *wire.Snapshot) error { s.BootID = "partial"; return errBoom }),
		newFunc("panics", func(context.Context, *wire.Snapshot) error { panic("nil map") }),
		newFunc("last", func(_ context.Context, s *wire.Snapshot) error { s.AgentVersion = "v"; return nil }),
	}
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	s := Collect(context.Background(), cs, now)
	if s.Hostname != "h" || s.BootID != "partial" || s.AgentVersion != "v" || !s.CollectedAt.Equal(now) {
		t.Errorf("snapshot: %+v", s)
	}
	want := []wire.CollectorError{{Collector: "fails", Error: "boom"}, {Collector: "panics", Error: "panic: nil map"}}
	if len(s.CollectorErrs) != 2 || s.CollectorErrs[0] != want[0] || s.CollectorErrs[1] != want[1] {
		t.Errorf("collector errors: %+v", s.CollectorErrs)
	}
}

func TestAgentNeedsVersion(t *testing.T) {
	s := Collect(context.Background(), []Collector{Agent(Config{Runtime: wire.RuntimeConfig{HeartbeatSec: 5}})}, time.Now())
	if len(s.CollectorErrs) != 1 || !strings.Contains(s.CollectorErrs[0].Error, "agent version") {
		t.Errorf("collector errors: %+v", s.CollectorErrs)
	}
	if s.Runtime.HeartbeatSec != 5 {
		t.Error("runtime not copied")
	}
}

func TestHostAndBootIDBelowRoot(t *testing.T) {
	root := writeTree(t, map[string]string{
		"proc/sys/kernel/hostname":       "fixture-host\n",
		"proc/sys/kernel/random/boot_id": "0b7c2a64-2d9e-4f7e-9a51-1e0c1c0e6f3d\n",
	})
	m := testMachine(t, Config{Root: root})
	var s wire.Snapshot
	if err := m.collectHostname(context.Background(), &s); err != nil || s.Hostname != "fixture-host" {
		t.Errorf("hostname %q, %v", s.Hostname, err)
	}
	if err := m.collectBootID(context.Background(), &s); err != nil || s.BootID != "0b7c2a64-2d9e-4f7e-9a51-1e0c1c0e6f3d" {
		t.Errorf("boot id %q, %v", s.BootID, err)
	}
	empty := testMachine(t, Config{Root: testdir.New(t)})
	if err := empty.collectHostname(context.Background(), &s); err == nil {
		t.Error("hostname: no error below an empty root")
	}
	if err := empty.collectBootID(context.Background(), &s); err == nil {
		t.Error("boot id: no error below an empty root")
	}
}
