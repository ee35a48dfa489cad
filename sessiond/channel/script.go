package channel

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// MaxJobOutput bounds the output a queued job reports.
const MaxJobOutput = 64 << 10

// RunScript runs a queued job's script with shell (powershell, cmd or sh;
// empty is the platform's default: PowerShell on Windows, sh elsewhere),
// as the account the mode gives, and returns its exit status and the first
// MaxJobOutput bytes of its output (stdout and stderr together). It is
// recorded in the command history like an exec.
func (s *Server) RunScript(ctx context.Context, mode, body, shell, session, label string) (int, string, error) {
	if mode == wire.ModeReadOnly {
		return 0, "", fmt.Errorf("read-only: queued work runs interactive or elevated")
	}
	if s.InputPaused() {
		return 0, "", fmt.Errorf("%s", pausedNotice)
	}
	id, err := s.account(mode)
	if err != nil {
		return 0, "", err
	}
	defer id.release()
	sc, err := s.scriptFor(id, shell, body)
	if err != nil {
		return 0, "", err
	}
	if sc.file != "" {
		// Removed as the account that wrote it: the file sits in that
		// account's directory, which it may have redirected (a junction
		// to an object-manager link) to make the agent delete another file.
		defer s.removeScript(id, sc.file, session, label)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := sc.command()
	s.command(cmd, id)
	cmd.WaitDelay = 5 * time.Second
	var out capped
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	var code int32 = 127 // as a shell reports a command it cannot start
	if g, err := startGroup(cmd); err != nil {
		fmt.Fprintf(&out, "%s: %v\n", sc.argv[0], err)
	} else {
		code = waitExec(ctx, cmd, g)
	}
	s.log.Info("queued job ran", "session", session, "job", label, "as", id.name, "exit", code,
		"duration", time.Since(start).Round(time.Millisecond))
	if s.cfg.OnCommand != nil {
		s.cfg.OnCommand(wire.CommandRecord{At: start.UTC(), Command: "queued job " + label, ExitCode: int(code), Session: session})
	}
	return int(code), out.String(), nil
}

// removeScript removes a job's script file as id, and logs when it
// cannot: a script left behind holds what the job ran (perhaps secrets),
// and one that cannot be removed may have been swapped for something else.
func (s *Server) removeScript(id identity, file, session, label string) {
	if err := s.asAccount(id, func() error { return os.Remove(file) }); err != nil {
		s.log.Warn("queued job's script file not removed", "session", session, "job", label, "file", file, "as", id.name, "err", err)
	}
}

// capped keeps the first MaxJobOutput bytes written to it.
type capped struct {
	mu sync.Mutex // mu guards b: stdout and stderr are copied concurrently
	b  []byte
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := MaxJobOutput - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

// String is the output as valid UTF-8 (bad bytes become U+FFFD), cut so
// that it stays within MaxJobOutput bytes also after that.
func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.ToValidUTF8(string(c.b), "\uFFFD")
	for len(s) > MaxJobOutput {
		s = strings.ToValidUTF8(s[:MaxJobOutput-3], "")
	}
	return s
}
