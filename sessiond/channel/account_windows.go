package channel

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/windows"

	"github.com/readymesh/readymesh/peer/wire"
)

// identity is an account commands run as. A zero token means the agent's
// own account; otherwise commands start with CreateProcessAsUser on the
// token and file copies impersonate it. The token is the caller's to
// release.
type identity struct {
	name  string
	home  string
	token windows.Token
	env   []string // nil: the agent's own environment
	temp  string   // where scripts for this account are written
}

// release closes the identity's token, if it has one of its own.
func (id identity) release() {
	if id.token != 0 {
		id.token.Close()
	}
}

// tempDir is where scripts run as this account are written.
func (id identity) tempDir() string { return id.temp }

// errNoConsoleUser is the refusal of an interactive session when nobody is
// logged on at the machine.
var errNoConsoleUser = errors.New("nobody is logged on at this machine's console, and interactive sessions run as " +
	"the console user: ask for an elevated session (it runs as LocalSystem) or queue the work")

// consoleUser finds the user logged on at the physical console. It is an
// interface so that tests can stand in for WTSQueryUserToken, which needs
// LocalSystem and a real logon session.
type consoleUser interface {
	// token returns a primary token of the console user, or an error
	// wrapping errNoConsoleUser when there is none.
	token() (windows.Token, error)
}

// wtsConsole asks Terminal Services for the active console session's
// user.
type wtsConsole struct{}

func (wtsConsole) token() (windows.Token, error) {
	sid := windows.WTSGetActiveConsoleSessionId()
	if sid == 0xFFFFFFFF {
		return 0, fmt.Errorf("%w (no active console session)", errNoConsoleUser)
	}
	var t windows.Token
	if err := windows.WTSQueryUserToken(sid, &t); err != nil {
		if errors.Is(err, windows.ERROR_NO_TOKEN) {
			return 0, errNoConsoleUser
		}
		return 0, fmt.Errorf("console user of session %d: %w", sid, err)
	}
	return t, nil
}

// consoleUsers is the source of console users; tests replace it.
var consoleUsers consoleUser = wtsConsole{}

// resolveAccounts notes the agent's own account. The interactive account
// is found at each session's start (account), because the console user
// changes as people log on and off.
func (s *Server) resolveAccounts() error {
	if s.cfg.User != "" {
		return errors.New("channel: a session user cannot be set on Windows: interactive sessions run as the user " +
			"logged on at the console")
	}
	self, err := tokenIdentity(windows.GetCurrentProcessToken())
	if err != nil {
		return fmt.Errorf("channel: the agent's account: %w", err)
	}
	self.token, self.env = 0, nil
	s.self = self
	s.root = isLocalSystem()
	s.console = s.root
	return nil
}

// account picks the account for a mode, or refuses. Elevated runs as the
// agent's account (LocalSystem when it runs as a service). Interactive
// and read-only run as the console user when the agent is LocalSystem, and
// as the agent's own account when a person started it by hand.
func (s *Server) account(mode string) (identity, error) {
	switch mode {
	case wire.ModeElevated:
		return s.self, nil
	case wire.ModeInteractive, wire.ModeReadOnly:
		if !s.console {
			return s.self, nil
		}
		t, err := consoleUsers.token()
		if err != nil {
			return identity{}, err
		}
		id, err := tokenIdentity(t)
		if err != nil {
			t.Close()
			return identity{}, fmt.Errorf("the console user: %w", err)
		}
		return id, nil
	}
	return identity{}, fmt.Errorf("unknown mode %q", mode)
}

// tokenIdentity describes the account of t (which it keeps in the
// identity): name, profile directory, environment and temporary
// directory.
func tokenIdentity(t windows.Token) (identity, error) {
	tu, err := t.GetTokenUser()
	if err != nil {
		return identity{}, fmt.Errorf("token user: %w", err)
	}
	name, domain, _, err := tu.User.Sid.LookupAccount("")
	if err != nil {
		name = tu.User.Sid.String()
	} else if domain != "" {
		name = domain + `\` + name
	}
	id := identity{name: name, token: t}
	if id.home, err = t.GetUserProfileDirectory(); err != nil || id.home == "" {
		id.home = os.Getenv("SystemRoot")
	}
	if id.env, err = t.Environ(false); err != nil {
		id.env = nil
	}
	id.temp = envValue(id.env, "TEMP")
	if id.temp == "" {
		id.temp = os.TempDir()
	}
	return id, nil
}

// envValue finds key in env, ignoring case as Windows does.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// isLocalSystem reports whether the agent runs as LocalSystem, as the
// service does.
func isLocalSystem() bool {
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	return err == nil && tu.User.Sid.IsWellKnown(windows.WinLocalSystemSid)
}

// command prepares cmd to run as id: suspended, so that startGroup puts it
// in its job object before it runs a single instruction; with no console
// window; and in a console process group of its own, so that a Ctrl-C at
// the agent's console does not reach it.
func (s *Server) command(cmd *exec.Cmd, id identity) {
	cmd.Dir = id.home
	cmd.Env = id.env
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= windows.CREATE_SUSPENDED | windows.CREATE_NEW_PROCESS_GROUP | windows.CREATE_NO_WINDOW
	cmd.SysProcAttr.Token = syscall.Token(id.token)
}

// asAccount runs fn with id's file access rights: the goroutine's thread
// impersonates id's token, so the kernel checks every path and the ACLs as
// it would for id, and new files belong to id. When the agent already is
// id, fn runs as it is. A thread that cannot stop impersonating stays
// locked and dies with the goroutine.
func (s *Server) asAccount(id identity, fn func() error) error {
	if id.token == 0 {
		return fn()
	}
	var imp windows.Token
	if err := windows.DuplicateTokenEx(id.token, windows.TOKEN_IMPERSONATE|windows.TOKEN_QUERY, nil,
		windows.SecurityImpersonation, windows.TokenImpersonation, &imp); err != nil {
		return fmt.Errorf("take on %s's file rights: %w", id.name, err)
	}
	defer imp.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := windows.SetThreadToken(nil, imp); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("take on %s's file rights: %w", id.name, err)
			return
		}
		err := fn()
		if windows.RevertToSelf() == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// noFollow is 0: Windows' os.OpenFile has no O_NOFOLLOW. Creating a
// symbolic link there needs administrator rights (or developer mode), so
// a planted link is checked for before opening instead (openPartial).
const noFollow = 0
