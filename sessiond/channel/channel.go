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
//     user (an unprivileged account when the agent runs as root).
//   - elevated: as the agent's own user, root on a managed endpoint; only
//     an elevated grant gets there.
//
// The person at the machine may pause remote input; while it is paused
// every channel refuses input, exec and writes, and nothing is queued for
// later.
package channel

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
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
	self identity // the agent's own user: elevated sessions
	user identity // interactive sessions
	root bool

	// paused is set while the person at the machine has paused remote
	// input: technician input is refused, never queued for later.
	paused atomic.Bool
	seq    atomic.Uint64 // numbers transcripts

	// termsMu guards terms.
	termsMu sync.Mutex
	terms   map[string]*shared // open terminals by session
}

// identity is an account commands run as.
type identity struct {
	name     string
	uid, gid uint32
	home     string
	shell    string
}

// New resolves the accounts sessions run as.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Logger, root: os.Geteuid() == 0}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	self, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("channel: current user: %w", err)
	}
	if s.self, err = lookup(self.Username); err != nil {
		return nil, err
	}
	name := cfg.User
	if name == "" {
		name = self.Username
		if s.root {
			name = "nobody"
		}
	}
	if s.user, err = lookup(name); err != nil {
		return nil, err
	}
	if !s.root && s.user.uid != s.self.uid {
		return nil, fmt.Errorf("channel: session user %s needs the agent to run as root", name)
	}
	return s, nil
}

func lookup(name string) (identity, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return identity{}, fmt.Errorf("channel: session user %q: %w", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	id := identity{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir, shell: "/bin/sh"}
	if sh := passwdShell(u.Username); sh != "" && !strings.HasSuffix(sh, "nologin") && !strings.HasSuffix(sh, "/false") {
		id.shell = sh
	}
	if id.home == "" || id.home == "/nonexistent" {
		id.home = "/"
	}
	return id, nil
}

// passwdShell reads a user's login shell from /etc/passwd.
func passwdShell(name string) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 7 && fields[0] == name {
			return fields[6]
		}
	}
	return ""
}

// Handlers returns the channel handlers for mesh.ListenConfig.Channels.
func (s *Server) Handlers() map[string]mesh.ChannelHandler {
	return map[string]mesh.ChannelHandler{Terminal: s.terminal, Exec: s.exec, Files: s.files}
}

// account picks the account for a mode, or refuses.
func (s *Server) account(mode string) (identity, error) {
	switch mode {
	case wire.ModeElevated:
		return s.self, nil
	case wire.ModeInteractive, wire.ModeReadOnly:
		return s.user, nil
	}
	return identity{}, fmt.Errorf("unknown mode %q", mode)
}

// command prepares cmd to run as id, in its own process group.
func (s *Server) command(cmd *exec.Cmd, id identity) {
	cmd.Dir = id.home
	cmd.Env = []string{"HOME=" + id.home, "USER=" + id.name, "LOGNAME=" + id.name, "SHELL=" + id.shell,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.root && id.uid != uint32(os.Geteuid()) {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: id.uid, Gid: id.gid}
	}
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
