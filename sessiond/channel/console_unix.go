//go:build !windows

package channel

import (
	"os"
	"os/exec"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/readymesh/readymesh/peer/wire"
)

// console is a shell on a terminal the agent holds: here a PTY, whose
// shell leads a session of its own.
type console struct {
	cmd     *exec.Cmd
	pty     *os.File
	session ptySession
	shell   string // the program, for logs and transcripts
}

// terminalShell picks the program a terminal runs: the account's login
// shell by default.
func terminalShell(id identity, name string) ([]string, error) {
	switch name {
	case "":
		return []string{id.shell, "-l"}, nil
	case wire.ShellPowerShell:
		p, err := shellPath(name)
		if err != nil {
			return nil, err
		}
		return []string{p, "-NoLogo", "-Login"}, nil
	}
	p, err := shellPath(name)
	if err != nil {
		return nil, err
	}
	return []string{p, "-l"}, nil
}

// startConsole runs argv as id on a new PTY of rows by cols.
func (s *Server) startConsole(id identity, argv []string, termName string, rows, cols uint16) (*console, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	s.command(cmd, id)
	cmd.SysProcAttr.Setpgid = false // the PTY's session leader has its own group
	cmd.Env = append(cmd.Env, "TERM="+termName)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		return nil, err
	}
	return &console{cmd: cmd, pty: f, session: newPtySession(cmd.Process.Pid), shell: argv[0]}, nil
}

func (c *console) Read(p []byte) (int, error)  { return c.pty.Read(p) }
func (c *console) Write(p []byte) (int, error) { return c.pty.Write(p) }
func (c *console) pid() int                    { return c.cmd.Process.Pid }

func (c *console) resize(rows, cols uint16) {
	pty.Setsize(c.pty, &pty.Winsize{Rows: rows, Cols: cols})
}

// wait returns the shell's exit status when it exits.
func (c *console) wait() int32 { return exitStatus(c.cmd.Wait()) }

// hangUp tells the session its terminal is gone, as closing a terminal
// window would: SIGHUP.
func (c *console) hangUp() { c.session.signal(unix.SIGHUP) }

// kill ends everything still in the session.
func (c *console) kill() { c.session.signal(unix.SIGKILL) }

func (c *console) close() { c.pty.Close() }
