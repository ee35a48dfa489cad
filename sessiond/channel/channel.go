// Package channel serves the session channels an agent offers inside a
// live session: a terminal on a real PTY (which other technicians may
// observe), commands with streamed output and their exit status, and file
// copies. It also runs queued jobs' scripts, under the same account rules.
// The mesh listener (package mesh) authenticates the technician and checks
// the grant; this package then enforces the session's mode, whatever the
// technician's client sends:
//
//   - read-only: the technician sees a terminal's output and may read
//     files; the agent never delivers input (each attempt is answered with
//     a notice), and exec and file writes are refused.
//   - interactive: input, exec and file writes, as the configured session
//     user (an unprivileged account when the agent runs as root) on Linux
//     and macOS; on Windows as the user logged on at the console, and
//     refused when nobody is.
//   - elevated: as the agent's own account, root or LocalSystem on a
//     managed endpoint; only an elevated grant gets there.
//
// The person at the machine may pause remote input; while it is paused
// every channel refuses input, exec and writes, and nothing is queued for
// later.
package channel

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
)

// Channel names, as a technician's client opens them.
const (
	Terminal = "terminal"
	Exec     = "exec"
	Files    = "files"
)

// Config configures the session channels.
type Config struct {
	// User is the account interactive sessions run as. Empty means
	// "nobody" when the agent runs as root, else the agent's own user.
	User string
	// TranscriptDir, if set, receives an asciicast v2 transcript of every
	// terminal, named SESSION-N.cast.
	TranscriptDir string
	// RecordInput keeps the technician's keystrokes in transcripts
	// (asciicast "i" events). Off by default: input may hold passwords.
	RecordInput bool
	// OnCommand, if set, is told of every command exec ran, with its exit
	// status, for the machine's command history.
	OnCommand func(wire.CommandRecord)
	// OnShare, if set, is called when a terminal that allows observers
	// opens or closes, so the session status can offer it to watch.
	OnShare func()
	// Logger receives the channels' logs. Nil means discard.
	Logger *slog.Logger
}

// Server serves the session channels of every live session on the agent.
type Server struct {
	// Immutable after New.
	cfg  Config
	log  *slog.Logger
	self identity // the agent's own account: elevated sessions
	user identity // interactive sessions (on Windows, see account)
	root bool     // the agent may act as other accounts (root, LocalSystem)
	// console: interactive sessions run as whoever is logged on at the
	// console, looked up at each session's start (macOS, Windows).
	console bool

	// paused is set while the person at the machine has paused remote
	// input: technician input is refused, never queued for later.
	paused atomic.Bool
	seq    atomic.Uint64 // numbers transcripts

	// termsMu guards terms.
	termsMu sync.Mutex
	terms   map[string]*shared // open terminals by session
}

// New resolves the accounts sessions run as.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.resolveAccounts(); err != nil {
		return nil, err
	}
	return s, nil
}

// Handlers returns the channel handlers for mesh.ListenConfig.Channels.
func (s *Server) Handlers() map[string]mesh.ChannelHandler {
	return map[string]mesh.ChannelHandler{Terminal: s.terminal, Exec: s.exec, Files: s.files}
}

// refuse ends a channel with a refusal the technician sees.
func refuse(w io.Writer, code, msg string) {
	raw, _ := json.Marshal(wire.Error{Code: code, Message: msg})
	wire.WriteChannelFrame(w, wire.FrameError, raw)
}

// header reads the channel's first frame into v.
func header(r io.Reader, v any) error {
	typ, p, err := wire.ReadChannelFrame(r)
	if err != nil {
		return err
	}
	if typ != wire.FrameHeader {
		return fmt.Errorf("%w: first frame is %q, want a header", wire.ErrFrame, typ)
	}
	return wire.Decode(p, v)
}

// exitStatus is the status a finished command reports: its exit code, or
// 128+signal when a signal killed it.
func exitStatus(err error) int32 {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int32(ws.Signal())
		}
		return int32(ee.ExitCode())
	}
	if err != nil {
		return 127
	}
	return 0
}

func exitFrame(w io.Writer, code int32) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	return wire.WriteChannelFrame(w, wire.FrameExit, b[:])
}

// lockedWriter serialises frame writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex // mu guards writes to w: one frame at a time
	w  io.Writer
}

func (l *lockedWriter) frame(typ byte, p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return wire.WriteChannelFrame(l.w, typ, p)
}

// exit writes the exit status, the channel's last frame.
func (l *lockedWriter) exit(code int32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return exitFrame(l.w, code)
}

// frameWriter is an io.Writer that sends each write as one frame.
type frameWriter struct {
	w   *lockedWriter
	typ byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		n := min(len(p), 32<<10)
		if err := f.w.frame(f.typ, p[:n]); err != nil {
			return 0, err
		}
		p = p[n:]
	}
	return total, nil
}

// SetInputPaused pauses or resumes remote input on every session.
func (s *Server) SetInputPaused(p bool) {
	if s.paused.Swap(p) != p {
		s.log.Info("remote input", "paused", p)
	}
}

// InputPaused reports whether remote input is paused.
func (s *Server) InputPaused() bool { return s.paused.Load() }

// pausedNotice is what a technician sees for input while paused.
const pausedNotice = "input refused: the person at this machine has paused remote input"
