package update

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// child is a new binary the watchdog runs.
type child struct {
	cmd   *exec.Cmd
	stdin io.Closer // closing it is the child's stop signal
	tail  *tailWriter
	done  chan struct{} // closed once the child has exited
	err   error         // how it exited; set before done closes
}

// waitDelay bounds the wait for the child's output pipes after it exits:
// a process it started may hold them open.
const waitDelay = 5 * time.Second

// startChild starts path with args and env; stdout goes to stdout, and
// stderr to stderr while its last lines are kept for the reason of a
// rollback.
func startChild(path string, args, env []string, stdout, stderr io.Writer) (*child, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout = stdout
	tw := &tailWriter{w: stderr}
	cmd.Stderr = tw
	cmd.WaitDelay = waitDelay
	detach(cmd)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: in, tail: tw, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop closes the child's stdin, waits up to grace for it to exit, and
// kills it if it has not. It returns once the child has exited.
func (c *child) stop(grace time.Duration) {
	c.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		return
	case <-t.C:
	}
	c.cmd.Process.Kill()
	<-c.done
}

// exitCode is the child's exit status, or -1 when it did not exit by
// itself (killed by a signal). Only after done.
func (c *child) exitCode() int {
	if c.cmd.ProcessState == nil {
		return -1
	}
	return c.cmd.ProcessState.ExitCode()
}

// describe says how the child ended, for a person: "exited with status
// 2", "was killed by signal: segmentation fault". Only after done.
func (c *child) describe() string {
	var ee *exec.ExitError
	switch {
	case c.err == nil:
		return "exited with status 0"
	case errors.As(c.err, &ee) && ee.ExitCode() >= 0:
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	case errors.As(c.err, &ee):
		return "was killed by " + ee.ProcessState.String()
	}
	return "ended: " + c.err.Error()
}

// Bounds of the stderr tail: lines kept and bytes per line.
const (
	tailLines   = 8
	tailLineMax = 300
)

// tailWriter passes writes on to w (nil: nowhere), ignoring its errors,
// and keeps the last tailLines lines, each cut at tailLineMax bytes.
type tailWriter struct {
	w io.Writer

	mu    sync.Mutex // guards the following
	lines []string   // complete lines, oldest first
	cur   []byte     // the line being written
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			t.add(rest)
			break
		}
		t.add(rest[:i])
		t.endLine()
		rest = rest[i+1:]
	}
	t.mu.Unlock()
	if t.w != nil {
		// Downstream's errors are not the child's: a Windows service's
		// stderr is no file at all, and an error here would break the
		// child's stderr pipe and lose the tail.
		t.w.Write(p)
	}
	return len(p), nil
}

// add appends b to the current line, up to tailLineMax bytes.
func (t *tailWriter) add(b []byte) {
	room := tailLineMax - len(t.cur)
	if room > 0 {
		t.cur = append(t.cur, b[:min(room, len(b))]...)
	}
}

// endLine keeps the current line if it has text.
func (t *tailWriter) endLine() {
	line := strings.TrimSpace(string(t.cur))
	t.cur = t.cur[:0]
	if line == "" {
		return
	}
	t.lines = append(t.lines, clip(line, tailLineMax))
	if len(t.lines) > tailLines {
		t.lines = t.lines[1:]
	}
}

// last returns the last line with text, counting an unfinished one.
func (t *tailWriter) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if line := strings.TrimSpace(string(t.cur)); line != "" {
		return clip(line, tailLineMax)
	}
	if len(t.lines) == 0 {
		return ""
	}
	return t.lines[len(t.lines)-1]
}
