package collect

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
)

// testLogger returns a logger that writes through t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// writeTree creates files (path → contents) below a new temporary root.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := testdir.New(t)
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// fakeTools returns a lookPath that finds only the given tools, each a
// shell script with the given body, and nothing else.
func fakeTools(t *testing.T, scripts map[string]string) func(string) (string, error) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("skipping: the stand-in commands are shell scripts, which Windows cannot run; " +
			"the collectors they stand in for are Linux's and macOS's")
	}
	dir := testdir.New(t)
	for name, body := range scripts {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return func(name string) (string, error) {
		if _, ok := scripts[name]; ok {
			return filepath.Join(dir, name), nil
		}
		return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
	}
}

// testMachine returns a machine on root with a test logger.
func testMachine(t *testing.T, cfg Config) machine {
	cfg.Logger = testLogger(t)
	return cfg.machine()
}

var errBoom = errors.New("boom")
