package channel

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
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
	id, ok := s.admitExec(ch, req.Argv, log)
	if !ok {
		return
	}
	defer id.release()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &lockedWriter{w: ch.Stream}
	cmd, stdin, err := s.execCommand(req, id, w)
	if err != nil {
		refuse(ch.Stream, wire.CodeInternal, err.Error())
		return
	}
	start := time.Now()
	g, err := startGroup(cmd)
	if err != nil {
		log.Info("exec failed to start", "argv", req.Argv, "err", err)
		w.frame(wire.FrameStderr, []byte(fmt.Sprintf("%s: %v\n", req.Argv[0], err)))
		exitFrame(ch.Stream, 127)
		return
	}
	log.Info("exec started", "argv", req.Argv, "as", id.name, "pid", cmd.Process.Pid)
	// Input, and the technician going away: both come from the stream.
	go func() {
		defer cancel()
		s.feedStdin(ch.Stream, w, stdin)
	}()
	code := waitExec(ctx, cmd, g)
	log.Info("exec ended", "argv", req.Argv, "exit", code, "duration", time.Since(start).Round(time.Millisecond))
	s.recordExec(req.Argv, start, code, ch.Session.Session)
	w.exit(code)
}

// admitExec refuses a command in a read-only session or while input is
// paused, and otherwise returns the account the session's mode runs it as.
func (s *Server) admitExec(ch *mesh.Channel, argv []string, log *slog.Logger) (identity, bool) {
	if ch.Grant.Mode == wire.ModeReadOnly {
		log.Warn("refused exec in a read-only session", "argv", argv)
		refuse(ch.Stream, wire.CodeForbidden, "read-only session: commands are not run; ask for an interactive session")
		return identity{}, false
	}
	if s.InputPaused() {
		log.Info("refused exec: input paused", "argv", argv)
		refuse(ch.Stream, wire.CodeForbidden, pausedNotice)
		return identity{}, false
	}
	id, err := s.account(ch.Grant.Mode)
	if err != nil {
		log.Info("refused exec", "argv", argv, "err", err)
		refuse(ch.Stream, wire.CodeForbidden, err.Error())
		return identity{}, false
	}
	return id, true
}

// execCommand prepares req's command to run as id, its stdout and stderr
// sent as frames through w, with a stdin pipe when the technician will
// send input (else stdin is nil and the command's is empty).
func (s *Server) execCommand(req wire.ExecRequest, id identity, w *lockedWriter) (*exec.Cmd, io.WriteCloser, error) {
	l := launch{argv: req.Argv}
	if req.Shell != "" {
		var err error
		if l, err = shellLine(req.Shell, strings.Join(req.Argv, " ")); err != nil {
			return nil, nil, err
		}
	}
	cmd := l.command()
	s.command(cmd, id)
	cmd.Stdout, cmd.Stderr = frameWriter{w: w, typ: wire.FrameOutput}, frameWriter{w: w, typ: wire.FrameStderr}
	// A child that keeps stdout open after the command exits (a daemon it
	// started) must not hold the channel forever.
	cmd.WaitDelay = 5 * time.Second
	if !req.Stdin {
		return cmd, nil, nil
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	return cmd, stdin, nil
}

// feedStdin reads the technician's frames until the stream ends. Input
// goes to stdin (an empty frame closes it), or is refused with a notice
// while input is paused; without stdin, frames are only read, so that the
// technician leaving is noticed.
func (s *Server) feedStdin(r io.Reader, w *lockedWriter, stdin io.WriteCloser) {
	for {
		typ, p, err := wire.ReadChannelFrame(r)
		if err != nil {
			return
		}
		switch {
		case typ != wire.FrameInput || stdin == nil:
		case s.InputPaused():
			w.frame(wire.FrameNotice, []byte(pausedNotice))
		case len(p) == 0:
			stdin.Close()
			stdin = nil
		default:
			stdin.Write(p)
		}
	}
}

// waitExec returns cmd's exit status. When ctx ends first (the technician
// left, a job's time ran out), it ends every process of the command's
// group. It releases the group either way.
func waitExec(ctx context.Context, cmd *exec.Cmd, g *procGroup) int32 {
	defer g.close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitStatus(err)
	case <-ctx.Done():
		g.kill()
		return exitStatus(<-done)
	}
}

// recordExec tells OnCommand of a command that ran, for the machine's
// command history.
func (s *Server) recordExec(argv []string, start time.Time, code int32, session string) {
	if s.cfg.OnCommand == nil {
		return
	}
	cmdline := shellQuote(argv)
	if len(cmdline) > maxCommandRecord { // history rides in every check-in
		cmdline = cmdline[:maxCommandRecord] + "…"
	}
	s.cfg.OnCommand(wire.CommandRecord{At: start.UTC(), Command: cmdline, ExitCode: int(code), Session: session})
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
