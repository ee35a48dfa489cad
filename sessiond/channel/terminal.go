package channel

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

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
		s.log.Info("terminal refused", "session", ch.Session.Session, "mode", ch.Grant.Mode, "err", err)
		refuse(ch.Stream, wire.CodeForbidden, err.Error())
		return
	}
	defer id.release()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &term{s: s, ch: ch, w: &lockedWriter{w: ch.Stream}, readOnly: ch.Grant.Mode == wire.ModeReadOnly,
		log: s.log.With("session", ch.Session.Session, "technician", ch.Session.Technician, "mode", ch.Grant.Mode)}
	if err := t.start(id, req); err != nil {
		refuse(ch.Stream, wire.CodeInternal, "start a shell: "+err.Error())
		return
	}
	defer t.con.close()
	t.rec = t.record()
	defer t.rec.close()
	sh, unshare := s.share(ch.Session.Session, req.AllowObservers)
	defer unshare()
	t.sh = sh
	t.serve(ctx, cancel)
}

// term is one open terminal: a shell on a PTY and where its output goes.
type term struct {
	// Set before serve starts, then read only.
	s        *Server
	ch       *mesh.Channel
	log      *slog.Logger
	w        *lockedWriter
	readOnly bool
	con      *console
	rows     uint16
	cols     uint16
	termName string      // TERM
	rec      *transcript // nil when not recorded
	sh       *shared

	// Owned by the input goroutine: refused input since the last
	// delivered, counted so that notices do not flood the technician.
	refused, paused int
}

// start runs the shell the technician asked for (the platform's default
// when it did not) as id, on a new terminal of the size it asked for
// (24x80 when it did not say).
func (t *term) start(id identity, req wire.TerminalRequest) error {
	argv, err := terminalShell(id, req.Shell)
	if err != nil {
		return err
	}
	t.termName = req.Term
	if t.termName == "" {
		t.termName = "xterm-256color"
	}
	t.rows, t.cols = req.Rows, req.Cols
	if req.Rows == 0 || req.Cols == 0 {
		t.rows, t.cols = 24, 80
	}
	if t.con, err = t.s.startConsole(id, argv, t.termName, t.rows, t.cols); err != nil {
		return err
	}
	t.log.Info("terminal opened", "shell", t.con.shell, "as", id.name, "pid", t.con.pid())
	return nil
}

// record opens the terminal's transcript, or returns nil when transcripts
// are off or the file cannot be made (the terminal goes on unrecorded).
func (t *term) record() *transcript {
	if t.s.cfg.TranscriptDir == "" {
		return nil
	}
	session := t.ch.Session.Session
	name := fmt.Sprintf("%s-%d.cast", session, t.s.seq.Add(1))
	title := fmt.Sprintf("readymesh session %s: %s, %s", session[:8], t.ch.Session.Technician, t.ch.Grant.Mode)
	rec, err := newTranscript(filepath.Join(t.s.cfg.TranscriptDir, name), int(t.cols), int(t.rows), title,
		map[string]string{"TERM": t.termName, "SHELL": t.con.shell}, t.s.cfg.RecordInput)
	if err != nil {
		t.log.Warn("no transcript", "err", err)
		return nil
	}
	return rec
}

// serve moves output and input until the shell exits or the technician
// leaves (cancel), then sends the exit status, the channel's last frame.
func (t *term) serve(ctx context.Context, cancel context.CancelFunc) {
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		t.copyOutput(cancel)
	}()
	go func() {
		defer cancel()
		t.readFrames()
	}()
	code := t.wait(ctx, outDone)
	t.log.Info("terminal closed", "exit", code)
	t.w.exit(code)
}

// copyOutput sends the PTY's output to the technician, the transcript and
// any observers until the PTY closes. A technician's stream that fails
// ends the terminal; the output is still read to its end, because
// closing a pseudo console waits (before Windows 11 24H2, forever) for its
// output to be drained.
func (t *term) copyOutput(cancel context.CancelFunc) {
	buf := make([]byte, 32<<10)
	for {
		n, err := t.con.Read(buf)
		if n > 0 {
			t.rec.event("o", buf[:n])
			t.sh.output(buf[:n])
			if t.w.frame(wire.FrameOutput, buf[:n]) != nil {
				cancel()
				io.Copy(io.Discard, t.con)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// readFrames reads the technician's frames until the stream ends: input
// and window resizes.
func (t *term) readFrames() {
	for {
		typ, p, err := wire.ReadChannelFrame(t.ch.Stream)
		if err != nil {
			return
		}
		switch typ {
		case wire.FrameInput:
			t.input(p)
		case wire.FrameResize:
			if rows, cols, ok := resizeSize(p); ok {
				t.con.resize(rows, cols)
			}
		}
	}
}

// maxTermSize is the most rows or columns a terminal has, as
// wire.TerminalRequest allows in the header.
const maxTermSize = 1000

// resizeSize reads a resize frame's rows and columns, each brought into
// 1..maxTermSize: a technician's frames are checked no less than its
// header, and a ConPTY size is a signed 16-bit number. ok is false when
// the frame is not 4 bytes long.
func resizeSize(p []byte) (rows, cols uint16, ok bool) {
	if len(p) != 4 {
		return 0, 0, false
	}
	clamp := func(n uint16) uint16 { return min(max(n, 1), maxTermSize) }
	return clamp(binary.BigEndian.Uint16(p)), clamp(binary.BigEndian.Uint16(p[2:])), true
}

// input delivers p to the shell, unless input is paused or the session is
// read-only. Refused input is never delivered and never queued for later;
// the technician gets a notice the first time and every 50th after.
func (t *term) input(p []byte) {
	if t.s.InputPaused() {
		if t.paused++; t.paused == 1 || t.paused%50 == 0 {
			t.log.Info("refused terminal input: input paused", "refused", t.paused)
			t.w.frame(wire.FrameNotice, []byte(pausedNotice))
		}
		return
	}
	t.paused = 0
	if t.readOnly {
		if t.refused++; t.refused == 1 || t.refused%50 == 0 {
			t.log.Warn("refused terminal input in a read-only session", "refused", t.refused)
			t.w.frame(wire.FrameNotice, []byte("input refused: this session is read-only"))
		}
		return
	}
	t.rec.event("i", p)
	t.con.Write(p)
}

// wait returns the shell's exit status when it exits, or hangs it up when
// the technician leaves first. Either way nothing the session started
// outlives it, and the PTY's last output goes out before the status.
func (t *term) wait(ctx context.Context, outDone <-chan struct{}) int32 {
	done := make(chan int32, 1)
	go func() { done <- t.con.wait() }()
	var code int32
	select {
	case code = <-done:
	case <-ctx.Done():
		code = t.hangUp(done)
	}
	// Background jobs sit in other process groups of the same session.
	t.con.kill()
	select {
	case <-outDone:
	case <-time.After(time.Second):
	}
	return code
}

// hangUp tells the shell its terminal closed (SIGHUP on Unix, closing the
// pseudo console on Windows), and kills what is left if the shell is
// still there 2 s later; done delivers the shell's exit status.
func (t *term) hangUp(done <-chan int32) int32 {
	t.con.hangUp()
	select {
	case code := <-done:
		return code
	case <-time.After(2 * time.Second):
		t.con.kill()
		return <-done
	}
}
