package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/sessiond/lastrun"
)

func TestDescribeExit(t *testing.T) {
	for _, tc := range []struct{ result, code, status, want string }{
		{"success", "exited", "0", ""},
		{"", "", "", ""},
		{"signal", "killed", "KILL", "killed by signal KILL"},
		{"exit-code", "exited", "2", "exited with status 2"},
		{"core-dump", "dumped", "SEGV", "crashed and dumped core on signal SEGV"},
		{"oom-kill", "killed", "KILL", "killed by signal KILL (the kernel's out-of-memory killer)"},
	} {
		if got := describeExit(tc.result, tc.code, tc.status); got != tc.want {
			t.Errorf("describeExit(%q, %q, %q) = %q, want %q", tc.result, tc.code, tc.status, got, tc.want)
		}
	}
}

// TestExitStatusFile: what systemd passes ExecStopPost lands where the
// next run reads it, and a clean stop leaves nothing.
func TestExitStatusFile(t *testing.T) {
	dir := testdir.New(t)
	path := filepath.Join(dir, lastrun.ExitStatusFile)
	run := func(result, code, status string) {
		t.Helper()
		t.Setenv("SERVICE_RESULT", result)
		t.Setenv("EXIT_CODE", code)
		t.Setenv("EXIT_STATUS", status)
		var out, errb bytes.Buffer
		if err := Run(context.Background(), []string{"exit-status", "--state", dir}, &out, &errb); err != nil {
			t.Fatalf("exit-status: %v: %s", err, errb.String())
		}
	}
	run("success", "exited", "0")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a clean stop wrote %s: %v", path, err)
	}
	run("signal", "killed", "KILL")
	if b, err := os.ReadFile(path); err != nil || string(b) != "killed by signal KILL\n" {
		t.Fatalf("%s: %q, %v", path, b, err)
	}
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"exit-status"}, &out, &errb); err == nil {
		t.Error("exit-status without --state succeeded")
	}
}
