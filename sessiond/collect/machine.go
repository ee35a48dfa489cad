package collect

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// machine is how collectors reach the machine they describe: the
// filesystem root they read below and the commands they run. Tests replace
// lookPath to simulate a machine without dpkg or apt.
type machine struct {
	root       string
	lookPath   func(file string) (string, error)
	log        *slog.Logger
	aptTimeout time.Duration
}

// path returns p (an absolute path on the machine) below the root.
func (m machine) path(p string) string {
	return filepath.Join(m.root, p)
}

// isHost reports whether the root is the running system's.
func (m machine) isHost() bool {
	return filepath.Clean(m.root) == "/"
}

// readTrimmed reads the file at p below the root, without surrounding space.
func (m machine) readTrimmed(p string) (string, error) {
	b, err := os.ReadFile(m.path(p))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// maxStderr bounds how much of a command's stderr goes into an error.
const maxStderr = 512

// output runs the command in the C locale and returns its stdout. On
// failure the error wraps the exec error (so callers can read the exit
// code) and quotes the start of stderr. stdout is returned even then.
func (m machine) output(ctx context.Context, path string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second // a child keeping the pipes open must not hang us
	start := time.Now()
	err := cmd.Run()
	m.log.Debug("ran command", "cmd", filepath.Base(path), "took", time.Since(start), "err", err)
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w%s", filepath.Base(path), err, quoteStderr(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func quoteStderr(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	if len(s) > maxStderr {
		s = s[:maxStderr] + "…"
	}
	return ": " + s
}
