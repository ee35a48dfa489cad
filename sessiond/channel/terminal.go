package channel

import (
	"context"
	"encoding/binary"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
)

// terminal runs a login shell on a PTY. Output streams back; input is
// delivered only when the mode allows it.
func (s *Server) terminal(ctx context.Context, ch *mesh.Channel) {
	var req wire.TerminalRequest
	if err := header(ch.Stream, &req); err != nil {
		refuse(ch.Stream, wire.CodeBadRequest, err.Error())
		return
	}
	if req.Observe != "" {
		s.observe(ctx, ch, req)
		return
	}
	id, err := s.account(ch.Grant.Mode)
	if err != nil {
		refuse(ch.Stream, wire.CodeForbidden, err.Error())
		return
	}
	log := s.log.With("session", ch.Session.Session, "technician", ch.Session.Technician, "mode", ch.Grant.Mode)
	readOnly := ch.Grant.Mode == wire.ModeReadOnly
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.Command(id.shell, "-l")
	s.command(cmd, id)
	cmd.SysProcAttr.Setpgid = false // the PTY's session leader has its own group
	term := req.Term
	if term == "" {
		term = "xterm-256color"
	}
	cmd.Env = append(cmd.Env, "TERM="+term)
	size := &pty.Winsize{Rows: max(req.Rows, 1), Cols: max(req.Cols, 1)}
	if req.Rows == 0 || req.Cols == 0 {
		size = &pty.Winsize{Rows: 24, Cols: 80}
	}
	f, err := pty.StartWithSize(cmd, size)
	if err != nil {
		refuse(ch.Stream, wire.CodeInternal, "start a shell: "+err.Error())
		return
	}
	defer f.Close()
	log.Info("terminal opened", "shell", id.shell, "as", id.name, "pid", cmd.Process.Pid)
	var rec *transcript
	if s.cfg.TranscriptDir != "" {
		name := fmt.Sprintf("%s-%d.cast", ch.Session.Session, s.seq.Add(1))
		title := fmt.Sprintf("readymesh session %s: %s, %s", ch.Session.Session[:8], ch.Session.Technician, ch.Grant.Mode)
		rec, err = newTranscript(filepath.Join(s.cfg.TranscriptDir, name), int(size.Cols), int(size.Rows), title,
			map[string]string{"TERM": term, "SHELL": id.shell}, s.cfg.RecordInput)
		if err != nil {
			log.Warn("no transcript", "err", err)
		}
		defer rec.close()
	}
	w := &lockedWriter{w: ch.Stream}
	sh, unshare := s.share(ch.Session.Session, req.AllowObservers)
	defer unshare()
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		buf := make([]byte, 32<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				rec.event("o", buf[:n])
				sh.output(buf[:n])
				if w.frame(wire.FrameOutput, buf[:n]) != nil {
					cancel()
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer cancel()
		refused, paused := 0, 0
		for {
			typ, p, err := wire.ReadChannelFrame(ch.Stream)
			if err != nil {
				return
			}
			switch typ {
			case wire.FrameInput:
				if s.InputPaused() {
					if paused++; paused == 1 || paused%50 == 0 {
						log.Info("refused terminal input: input paused", "refused", paused)
						w.frame(wire.FrameNotice, []byte(pausedNotice))
					}
					continue
				}
				paused = 0
				if readOnly {
					// Never delivered, never queued for later.
					if refused++; refused == 1 || refused%50 == 0 {
						log.Warn("refused terminal input in a read-only session", "refused", refused)
						w.frame(wire.FrameNotice, []byte("input refused: this session is read-only"))
					}
					continue
				}
				rec.event("i", p)
				f.Write(p)
			case wire.FrameResize:
				if len(p) == 4 {
					pty.Setsize(f, &pty.Winsize{Rows: binary.BigEndian.Uint16(p), Cols: binary.BigEndian.Uint16(p[2:])})
				}
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		killSession(cmd.Process.Pid, syscall.SIGHUP)
		select {
		case werr = <-done:
		case <-time.After(2 * time.Second):
			killSession(cmd.Process.Pid, syscall.SIGKILL)
			werr = <-done
		}
	}
	// Nothing the session started outlives it: background jobs sit in
	// other process groups of the same session.
	killSession(cmd.Process.Pid, syscall.SIGKILL)
	// The PTY's last output before the exit status.
	select {
	case <-outDone:
	case <-time.After(time.Second):
	}
	code := exitStatus(werr)
	log.Info("terminal closed", "exit", code)
	w.mu.Lock()
	exitFrame(ch.Stream, code)
	w.mu.Unlock()
}
