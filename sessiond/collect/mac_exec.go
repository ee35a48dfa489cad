package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// errMacOutputTooLarge is returned when a command writes more than its
// bound. The command is stopped: its stdout pipe is closed, so its next
// write fails.
var errMacOutputTooLarge = errors.New("output larger than its bound")

// macStderrKept bounds how much stderr macOutput keeps for the caller to
// read. More is discarded without failing: stderr is only diagnostics.
const macStderrKept = 64 << 10

// macCapped is a buffer that keeps at most limit bytes. When fail is set, a
// write past the limit fails, which makes os/exec close the pipe and stop
// copying; otherwise the excess is dropped.
type macCapped struct {
	buf   bytes.Buffer
	limit int
	fail  bool
	over  bool
}

func (c *macCapped) Write(p []byte) (int, error) {
	room := c.limit - c.buf.Len()
	if len(p) <= room {
		return c.buf.Write(p)
	}
	c.buf.Write(p[:room])
	c.over = true
	if c.fail {
		return room, errMacOutputTooLarge
	}
	return len(p), nil
}

// macOutput runs the command as machine.output does (C locale, bounded
// wait for the pipes, stderr quoted in the error), but keeps at most limit
// bytes of stdout: a command that writes more fails with
// errMacOutputTooLarge and its output is dropped, because a cut JSON
// document or list is not worth parsing. It returns stderr too, which
// softwareupdate uses for its ordinary messages.
func (m machine) macOutput(ctx context.Context, limit int, path string, args ...string) (stdout, stderr string, err error) {
	out := &macCapped{limit: limit, fail: true}
	errOut := &macCapped{limit: macStderrKept}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.WaitDelay = time.Second // a child keeping the pipes open must not hang us
	start := time.Now()
	err = cmd.Run()
	name := filepath.Base(path)
	m.log.Debug("ran command", "cmd", name, "took", time.Since(start), "stdout_bytes", out.buf.Len(), "err", err)
	stderr = errOut.buf.String()
	if out.over {
		return "", stderr, fmt.Errorf("%s: %w of %d bytes", name, errMacOutputTooLarge, limit)
	}
	if err != nil {
		return out.buf.String(), stderr, fmt.Errorf("%s: %w%s", name, err, quoteStderr(errOut.buf.Bytes()))
	}
	return out.buf.String(), stderr, nil
}

// macTool finds a command by its absolute path.
func (m machine) macTool(path string) (string, error) {
	p, err := m.lookPath(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return p, nil
}

// macTimeout runs fn under the configured bound of one slow collector
// (Config.AptTimeout) and says so when the bound is what stopped it.
func (m machine) macTimeout(ctx context.Context, what string, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, m.aptTimeout)
	defer cancel()
	err := fn(ctx)
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%s: not done after %v: %w", what, m.aptTimeout, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// macSkips records what a parser skipped and why, keeping the first few
// reasons for the log.
type macSkips struct {
	n       int
	reasons []string
}

// macSkipsKept is how many reasons macSkips keeps.
const macSkipsKept = 8

func (s *macSkips) add(format string, args ...any) {
	s.n++
	if len(s.reasons) < macSkipsKept {
		s.reasons = append(s.reasons, fmt.Sprintf(format, args...))
	}
}

// String summarises the skips: the count and the reasons kept.
func (s macSkips) String() string {
	if s.n == 0 {
		return "nothing skipped"
	}
	more := ""
	if s.n > len(s.reasons) {
		more = fmt.Sprintf("; %d more", s.n-len(s.reasons))
	}
	return fmt.Sprintf("%d skipped: %s%s", s.n, strings.Join(s.reasons, "; "), more)
}

// macClip shortens s for quoting in an error or a skip reason.
func macClip(s string) string {
	n := 80
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
