//go:build !windows

package channel

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/readymesh/readymesh/peer/wire"
)

// identity is an account commands run as.
type identity struct {
	name     string
	uid, gid uint32
	home     string
	shell    string   // login shell, for terminals
	groups   []uint32 // supplementary groups commands get (macOS: the console user's admin, _developer…)
}

// release gives back what account took for one use: nothing on Unix.
func (identity) release() {}

// tempDir is where scripts run as this account are written.
func (identity) tempDir() string { return os.TempDir() }

// resolveAccounts looks up the agent's own account and the interactive
// sessions' one.
func (s *Server) resolveAccounts() error {
	s.root = os.Geteuid() == 0
	self, err := user.Current()
	if err != nil {
		return fmt.Errorf("channel: current user: %w", err)
	}
	if s.self, err = lookup(self.Username); err != nil {
		return err
	}
	name := s.cfg.User
	if name == "" {
		name = self.Username
		if s.root && consoleSessions {
			s.console = true // found at each session's start (account)
			return nil
		}
		if s.root {
			name = "nobody"
		}
	}
	if s.user, err = lookup(name); err != nil {
		return err
	}
	if !s.root && s.user.uid != s.self.uid {
		return fmt.Errorf("channel: session user %s needs the agent to run as root", name)
	}
	return nil
}

// account picks the account for a mode, or refuses.
func (s *Server) account(mode string) (identity, error) {
	switch mode {
	case wire.ModeElevated:
		return s.self, nil
	case wire.ModeInteractive, wire.ModeReadOnly:
		if s.console {
			return consoleAccount()
		}
		return s.user, nil
	}
	return identity{}, fmt.Errorf("unknown mode %q", mode)
}

func lookup(name string) (identity, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return identity{}, fmt.Errorf("channel: session user %q: %w", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	id := identity{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir, shell: defaultShell}
	if sh := loginShell(u.Username); sh != "" && !strings.HasSuffix(sh, "nologin") && !strings.HasSuffix(sh, "/false") {
		id.shell = sh
	}
	if consoleSessions {
		// A Mac's console user works with its groups; file copies
		// (settid) get them too. Linux session users run with none, as
		// their file copies (fsuid, no groups) do.
		gids, _ := u.GroupIds()
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				id.groups = append(id.groups, uint32(n))
			}
		}
	}
	if id.home == "" || id.home == "/nonexistent" || id.home == "/var/empty" {
		id.home = "/"
	}
	return id, nil
}

// command prepares cmd to run as id, in its own process group.
func (s *Server) command(cmd *exec.Cmd, id identity) {
	cmd.Dir = id.home
	cmd.Env = []string{"HOME=" + id.home, "USER=" + id.name, "LOGNAME=" + id.name, "SHELL=" + id.shell,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.root && id.uid != uint32(os.Geteuid()) {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: id.uid, Gid: id.gid, Groups: id.groups}
	}
}

// procGroup is every process a command started: its process group.
type procGroup struct{ pid int }

// startGroup starts cmd (prepared by command, so in a group of its own).
func startGroup(cmd *exec.Cmd) (*procGroup, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &procGroup{pid: cmd.Process.Pid}, nil
}

// kill ends every process of the group.
func (g *procGroup) kill() { syscall.Kill(-g.pid, syscall.SIGKILL) }

// close releases the group: nothing to release on Unix.
func (g *procGroup) close() {}

// asAccount runs fn with id's filesystem rights (see files). When the
// agent already is id, fn runs as it is.
func (s *Server) asAccount(id identity, fn func() error) error {
	if !s.root || id.uid == uint32(os.Geteuid()) {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// Not unlocked on purpose: the thread carries id's credentials
		// and must not run anything else; it exits with this goroutine.
		lockThread()
		if err := dropFS(id); err != nil {
			errc <- fmt.Errorf("take on %s's file rights: %w", id.name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// noFollow refuses to open a symlink as the last path component.
const noFollow = syscall.O_NOFOLLOW
