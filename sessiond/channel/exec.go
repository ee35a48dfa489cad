package channel

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
)

// exec runs one command: stdout and stderr stream back as frames, input
// frames feed stdin when asked, and the exit status ends the channel.
func (s *Server) exec(ctx context.Context, ch *mesh.Channel) {
	var req wire.ExecRequest
	if err := header(ch.Stream, &req); err != nil {
		refuse(ch.Stream, wire.CodeBadRequest, err.Error())
		return
	}
	log := s.log.With("session", ch.Session.Session, "technician", ch.Session.Technician, "mode", ch.Grant.Mode)
	if ch.Grant.Mode == wire.ModeReadOnly {
		log.Warn("refused exec in a read-only session", "argv", req.Argv)
		refuse(ch.Stream, wire.CodeForbidden, "read-only session: commands are not run; ask for an interactive session")
		return
	}
	if s.InputPaused() {
		log.Info("refused exec: input paused", "argv", req.Argv)
		refuse(ch.Stream, wire.CodeForbidden, pausedNotice)
		return
	}
	id, err := s.account(ch.Grant.Mode)
	if err != nil {
		refuse(ch.Stream, wire.CodeForbidden, err.Error())
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	s.command(cmd, id)
	w := &lockedWriter{w: ch.Stream}
	cmd.Stdout, cmd.Stderr = frameWriter{w: w, typ: wire.FrameOutput}, frameWriter{w: w, typ: wire.FrameStderr}
	// A child that keeps stdout open after the command exits (a daemon it
	// started) must not hold the channel forever.
	cmd.WaitDelay = 5 * time.Second
	var stdin io.WriteCloser
	if req.Stdin {
		if stdin, err = cmd.StdinPipe(); err != nil {
			refuse(ch.Stream, wire.CodeInternal, err.Error())
			return
		}
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		log.Info("exec failed to start", "argv", req.Argv, "err", err)
		w.frame(wire.FrameStderr, []byte(fmt.Sprintf("%s: %v\n", req.Argv[0], err)))
		exitFrame(ch.Stream, 127)
		return
	}
	log.Info("exec started", "argv", req.Argv, "as", id.name, "pid", cmd.Process.Pid)
	// Input, and the technician going away: both come from the stream.
	go func() {
		defer cancel()
		for {
			typ, p, err := wire.ReadChannelFrame(ch.Stream)
			if err != nil {
				return
			}
			if typ == wire.FrameInput && stdin != nil && s.InputPaused() {
				w.frame(wire.FrameNotice, []byte(pausedNotice))
				continue
			}
			if typ == wire.FrameInput && stdin != nil {
				if len(p) == 0 {
					stdin.Close()
					stdin = nil
					continue
				}
				stdin.Write(p)
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		// The technician left: end the command's whole process group.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-done
	}
	code := exitStatus(werr)
	log.Info("exec ended", "argv", req.Argv, "exit", code, "duration", time.Since(start).Round(time.Millisecond))
	if s.cfg.OnCommand != nil {
		cmdline := shellQuote(req.Argv)
		if len(cmdline) > maxCommandRecord { // history rides in every check-in
			cmdline = cmdline[:maxCommandRecord] + "…"
		}
		s.cfg.OnCommand(wire.CommandRecord{At: start.UTC(), Command: cmdline, ExitCode: int(code),
			Session: ch.Session.Session})
	}
	w.mu.Lock()
	exitFrame(ch.Stream, code)
	w.mu.Unlock()
}

// maxCommandRecord bounds a command line kept in history.
const maxCommandRecord = 1024

// shellQuote joins argv as a shell would read it back.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == '/' || r == '=' || r == ':' || r == ',' || r == '+' ||
				(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// MaxJobOutput bounds the output a queued job reports.
const MaxJobOutput = 64 << 10

// RunScript runs a queued job's script with sh, as the account the mode
// gives, and returns its exit status and the first MaxJobOutput bytes of
// its output (stdout and stderr together). It is recorded in the command
// history like an exec.
func (s *Server) RunScript(ctx context.Context, mode, script, session, label string) (int, string, error) {
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
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	s.command(cmd, id)
	cmd.WaitDelay = 5 * time.Second
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) } // the whole group
	var out capped
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	code := exitStatus(err)
	s.log.Info("queued job ran", "session", session, "job", label, "as", id.name, "exit", code,
		"duration", time.Since(start).Round(time.Millisecond))
	if s.cfg.OnCommand != nil {
		s.cfg.OnCommand(wire.CommandRecord{At: start.UTC(), Command: "queued job " + label, ExitCode: int(code), Session: session})
	}
	return int(code), out.String(), nil
}

// capped keeps the first MaxJobOutput bytes written to it.
type capped struct {
	mu sync.Mutex
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
