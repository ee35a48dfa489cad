package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/internal/binaries"
)

// bins holds the binaries TestMain built. skip is set instead when they
// cannot be built here (no Go toolchain), and every test skips with it.
var bins struct {
	broker, sessiond, meshctl string
	skip                      string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "readymesh-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	if err := build(dir); err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles the three binaries into dir. A missing toolchain is a
// reason to skip; a compile error is a failure.
func build(dir string) error {
	if _, err := exec.LookPath("go"); err != nil {
		bins.skip = "no go command on PATH to build the binaries with"
		return nil
	}
	p, err := binaries.Build(dir)
	bins.broker, bins.sessiond, bins.meshctl = p.Broker, p.Sessiond, p.Meshctl
	return err
}

// needBinaries skips t, saying why, when the binaries could not be built.
func needBinaries(t testing.TB) {
	t.Helper()
	if bins.skip != "" {
		t.Skipf("skipping: %s", bins.skip)
	}
}

// logBuffer collects a process's output and wakes waiters on each write.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer  // mu guards all following fields
	changed chan struct{} // closed and replaced on every write
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return len(p), nil
}

// snapshot returns the text so far and a channel closed on the next write.
func (b *logBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

func (b *logBuffer) String() string {
	s, _ := b.snapshot()
	return s
}

// tail returns the last n lines.
func (b *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d earlier lines", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// proc is a long-running process started by a test: a broker or an agent.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *logBuffer
	stderr *logBuffer
	done   chan struct{} // closed once the process has exited and been reaped
	err    error         // Wait's result; read only after done is closed
}

// logTail is how many lines of each process's logs a failing test prints.
const logTail = 40

// startProc starts bin with args. The process is SIGKILLed in t.Cleanup if
// it is still running, and on failure its log tails are printed. name must
// be unique within the test; it labels the logs.
func startProc(t testing.TB, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	return startProcIn(t, name, env, nil, bin, args...)
}

// startProcIn is startProc with stdin read from in (nil: no input).
func startProcIn(t testing.TB, name string, env []string, in io.Reader, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, stdout: newLogBuffer(), stderr: newLogBuffer(), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdin = in
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	dieWithParent(p.cmd)
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL) // also ends a SIGSTOPped process
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", name, p.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("--- %s (pid %d) %s\n--- stderr tail:\n%s\n--- stdout tail:\n%s",
				name, p.cmd.Process.Pid, strings.Join(p.cmd.Args, " "), p.stderr.tail(logTail), p.stdout.tail(logTail))
		}
	})
	return p
}

func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits at most d for the process to exit and returns its exit error.
func (p *proc) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v", p.name, d)
		return nil
	}
}

// waitOutput waits at most d for a stdout line starting with prefix and
// returns it. It fails the test if the process exits first.
func (p *proc) waitOutput(t testing.TB, prefix string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		out, changed := p.stdout.snapshot()
		if line, ok := lineWithPrefix(out, prefix); ok {
			return line
		}
		select {
		case <-changed:
		case <-p.done:
			out, _ := p.stdout.snapshot()
			if line, ok := lineWithPrefix(out, prefix); ok {
				return line
			}
			t.Fatalf("%s exited (%v) before printing %q; stderr:\n%s", p.name, p.err, prefix, p.stderr.tail(logTail))
		case <-deadline:
			t.Fatalf("%s printed no line starting %q within %v", p.name, prefix, d)
		}
	}
}

func lineWithPrefix(text, prefix string) (string, bool) {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line, true
		}
	}
	return "", false
}

// result is what a short-lived command did.
type result struct {
	stdout, stderr string
	err            error // nil on exit status 0
}

func (r result) String() string {
	return fmt.Sprintf("exit: %v\nstdout: %s\nstderr: %s", r.err, r.stdout, r.stderr)
}

// runCmd runs a short-lived command to completion, bounded by d.
func runCmd(t testing.TB, d time.Duration, env []string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return runCmdContext(ctx, env, bin, args...)
}

// runCmdContext is runCmd for use off the test goroutine.
func runCmdContext(ctx context.Context, env []string, bin string, args ...string) result {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	dieWithParent(cmd)
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: %w (%v)", filepath.Base(bin), strings.Join(args, " "), ctx.Err(), err)
	}
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

// exitCode returns a result's exit status, or -1 if it did not exit
// normally.
func (r result) exitCode() int {
	var ee *exec.ExitError
	switch {
	case r.err == nil:
		return 0
	case errors.As(r.err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// poll calls cond until it reports true or d has passed since the call,
// and returns how long that took. On timeout it fails the test with what
// cond last said. The pause between calls is short: a cond usually runs a
// process, which takes some tens of milliseconds itself.
func poll(t testing.TB, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		last = state
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v; last state: %s", what, d, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testDir returns a fresh directory for t's processes. Agent state
// directories hold a unix socket, whose path must stay under about 100
// bytes, so a long test name falls back to a short temporary name.
func testDir(t testing.TB) string {
	t.Helper()
	if d := t.TempDir(); len(d) < 70 {
		return d
	}
	d, err := os.MkdirTemp("", "rmit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// fixture returns the absolute path of a testdata fixture.
func fixture(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return p
}
