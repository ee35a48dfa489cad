package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs what `make demo` runs, with -once so it exits after printing
// the queue, and checks the fleet a new user would see: readiness and
// reachability side by side, the fixture machines in their states, the
// kiosk ready but offline, and every process stopped afterwards.
func TestDemo(t *testing.T) {
	needBinaries(t)
	dir := testDir(t)
	demo := filepath.Join(dir, "demo-bin")
	if out, err := exec.Command("go", "build", "-o", demo, "github.com/readymesh/readymesh/integration/demo").CombinedOutput(); err != nil {
		t.Fatalf("build demo: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, demo, "-once", "-bin", filepath.Dir(bins.broker),
		"-dir", filepath.Join(dir, "demo"), "-fixtures", "demo/fixtures")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	text := string(out)
	rows := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 2 && (f[0] == "acme" || f[0] == "globex") {
			rows[f[1]] = line
		}
	}
	want := map[string][]string{
		"acme-laptop-07":  {"consent-required", "● online", "approval expired"},
		"acme-fs01":       {"degraded", "● online", "0.0.9 (behind)"},
		"globex-web-02":   {"degraded", "● online", "14 pending updates"},
		"globex-kiosk-03": {"ready", "○ stopped"},
	}
	for name, words := range want {
		row, ok := rows[name]
		if !ok {
			t.Errorf("queue lacks %s:\n%s", name, text)
			continue
		}
		for _, w := range words {
			if !strings.Contains(row, w) {
				t.Errorf("%s row %q lacks %q", name, row, w)
			}
		}
	}
	if len(rows) != 5 {
		t.Errorf("queue has %d machines, want 5 (this host and four fixtures):\n%s", len(rows), text)
	}
	if !strings.Contains(text, "READYMESH_HOME=") {
		t.Errorf("demo does not say how to use meshctl against the fleet:\n%s", text)
	}
	// The demo stops what it started: nothing may still use its data.
	if out, _ := exec.Command("pgrep", "-f", filepath.Join(dir, "demo")).Output(); len(out) > 0 {
		t.Errorf("processes of the demo still running: %s", out)
	}
}
