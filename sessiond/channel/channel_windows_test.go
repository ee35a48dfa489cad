package channel

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/windows"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

// These tests run the Windows code for real: under Windows, or under Wine
// (GOOS=windows go test -exec wine), which has pseudo consoles, job
// objects and cmd.exe, but no PowerShell and no console-user tokens.

// TestConsoleRunsCmd opens a pseudo console with cmd.exe, types a command
// and exit, and reads the output back.
func TestConsoleRunsCmd(t *testing.T) {
	s := newTestServer(t)
	argv, err := terminalShell(s.self, wire.ShellCmd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.startConsole(s.self, argv, "xterm-256color", 30, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	var mu sync.Mutex
	var out bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	if !ownStdIsConsole() {
		t.Log("this test's standard handles are not a console: under Wine the shell then gets no handles " +
			"(run it on a terminal, as make test's Wine harness does)")
	}
	c.resize(40, 120)
	if _, err := c.Write([]byte("echo readymesh-%USERNAME%-ok\rexit 7\r")); err != nil {
		t.Fatal(err)
	}
	done := make(chan int32, 1)
	go func() { done <- c.wait() }()
	select {
	case code := <-done:
		if code != 7 {
			t.Errorf("exit code %d, want 7", code)
		}
	case <-time.After(30 * time.Second):
		c.kill()
		t.Fatal("cmd.exe on the pseudo console did not exit in 30 s")
	}
	c.kill() // closes the pseudo console: the output pipe ends
	select {
	case <-readDone:
	case <-time.After(10 * time.Second):
		t.Fatal("output pipe did not end after the pseudo console closed")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(out.String(), "readymesh-") || !strings.Contains(out.String(), "-ok") {
		t.Fatalf("console output lacks the echo: %q", out.String())
	}
}

// TestGroupKillsTree starts cmd.exe, which starts a second cmd.exe that
// waits; killing the group ends both, and wait returns.
func TestGroupKillsTree(t *testing.T) {
	s := newTestServer(t)
	l, err := shellLine(wire.ShellCmd, `cmd /d /c "ping -n 60 127.0.0.1 >NUL" & echo never`)
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.command()
	s.command(cmd, s.self)
	var out bytes.Buffer
	cmd.Stdout = &out
	g, err := startGroup(cmd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	codec := make(chan int32, 1)
	go func() { codec <- waitExec(ctx, cmd, g) }()
	select {
	case code := <-codec:
		if code == 0 {
			t.Errorf("killed command reported exit 0")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("killing the group did not end the command in 30 s")
	}
	if strings.Contains(out.String(), "never") {
		t.Fatalf("the command went on after the kill: %q", out.String())
	}
}

// TestRunScriptCmd runs a queued job's batch script and reads its output
// and exit status; the script file is gone afterwards.
func TestRunScriptCmd(t *testing.T) {
	s := newTestServer(t)
	code, out, err := s.RunScript(context.Background(), wire.ModeElevated, "@echo off\necho line one\necho line two\nexit /b 3\n",
		wire.ShellCmd, "session", "job1")
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 || !strings.Contains(out, "line one\r\nline two") {
		t.Fatalf("exit %d, output %q: want 3 and both lines", code, out)
	}
}

// TestPowerShellMissingSaysSo: where PowerShell is absent (Wine), a
// PowerShell job is refused with the reason, not run as something else.
func TestPowerShellMissingSaysSo(t *testing.T) {
	if _, err := shellPath(wire.ShellPowerShell); err == nil {
		t.Log("PowerShell is installed here: the refusal cannot be seen (not a failure)")
		return
	}
	s := newTestServer(t)
	_, _, err := s.RunScript(context.Background(), wire.ModeElevated, "Get-Date", "", "session", "job2")
	if err == nil || !strings.Contains(err.Error(), "PowerShell is not installed") {
		t.Fatalf("default-shell job without PowerShell: %v", err)
	}
}

type noConsoleUser struct{}

func (noConsoleUser) token() (windows.Token, error) { return 0, errNoConsoleUser }

// TestInteractiveNeedsConsoleUser: an agent running as LocalSystem with
// nobody at the console refuses interactive work and says why; elevated
// work still runs.
func TestInteractiveNeedsConsoleUser(t *testing.T) {
	s := newTestServer(t)
	s.root, s.console = true, true // as the service runs
	prev := consoleUsers
	consoleUsers = noConsoleUser{}
	defer func() { consoleUsers = prev }()
	_, _, err := s.RunScript(context.Background(), wire.ModeInteractive, "echo hi", wire.ShellCmd, "session", "job3")
	if !errors.Is(err, errNoConsoleUser) || !strings.Contains(err.Error(), "nobody is logged on") {
		t.Fatalf("interactive with nobody logged on: %v", err)
	}
	if code, out, err := s.RunScript(context.Background(), wire.ModeElevated, "echo hi", wire.ShellCmd, "session", "job4"); err != nil || code != 0 || !strings.Contains(out, "hi") {
		t.Fatalf("elevated: %d %q %v", code, out, err)
	}
}

// ownToken stands in for the console user with a primary token of the
// test's own account: the interactive path then runs for real, through
// CreateProcessAsUser and impersonation, as it does for a user's token.
type ownToken struct{ t *testing.T }

func (o ownToken) token() (windows.Token, error) {
	var self windows.Token
	if err := windows.OpenProcessToken(windows.CurrentProcess(), windows.TOKEN_ALL_ACCESS, &self); err != nil {
		o.t.Fatalf("own token: %v", err)
	}
	defer self.Close()
	var prim windows.Token
	if err := windows.DuplicateTokenEx(self, windows.MAXIMUM_ALLOWED, nil, windows.SecurityImpersonation,
		windows.TokenPrimary, &prim); err != nil {
		o.t.Fatalf("duplicate own token: %v", err)
	}
	return prim, nil
}

// TestInteractiveWithUserToken runs an interactive job and a file copy
// with a user token: the script is written while impersonating, the job
// starts through CreateProcessAsUser, and a terminal opens as that user.
func TestInteractiveWithUserToken(t *testing.T) {
	s := newTestServer(t)
	s.root, s.console = true, true
	prev := consoleUsers
	consoleUsers = ownToken{t}
	defer func() { consoleUsers = prev }()
	code, out, err := s.RunScript(context.Background(), wire.ModeInteractive, "echo as-%USERNAME%", wire.ShellCmd, "session", "job5")
	if err != nil || code != 0 || !strings.Contains(out, "as-") {
		t.Fatalf("interactive job with a user token: exit %d, %q, %v", code, out, err)
	}
	id, err := s.account(wire.ModeInteractive)
	if err != nil {
		t.Fatal(err)
	}
	defer id.release()
	if id.token == 0 || id.name == "" {
		t.Fatalf("console identity %+v has no token or name", id)
	}
	dir := testdir.New(t)
	if err := s.asAccount(id, func() error { return os.WriteFile(filepath.Join(dir, "as-user"), []byte("x"), 0o600) }); err != nil {
		t.Fatalf("write while impersonating: %v", err)
	}
	argv, _ := terminalShell(id, wire.ShellCmd)
	c, err := s.startConsole(id, argv, "xterm", 24, 80)
	if err != nil {
		t.Fatalf("pseudo console as the user: %v", err)
	}
	c.kill()
	c.close()
}

// TestScriptRemovalFailureLogged: when a job's script file cannot be
// removed after the job (here the script deleted itself first), the
// agent says so in its log.
func TestScriptRemovalFailureLogged(t *testing.T) {
	var logs syncBuffer
	s, err := New(Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	code, out, err := s.RunScript(context.Background(), wire.ModeElevated, "@echo off\r\necho gone\r\ndel \"%~f0\" & exit /b 0\r\n",
		wire.ShellCmd, "session", "job6")
	if err != nil || code != 0 || !strings.Contains(out, "gone") {
		t.Fatalf("self-deleting script: exit %d, output %q, %v", code, out, err)
	}
	if got := logs.String(); !strings.Contains(got, "script file not removed") || !strings.Contains(got, "job=job6") {
		t.Fatalf("no log of the script file that could not be removed; the log holds:\n%s", got)
	}
}

// syncBuffer is a bytes.Buffer a logger may write to from any goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
