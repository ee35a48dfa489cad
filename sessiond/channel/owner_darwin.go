package channel

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// consoleSessions: on a Mac, interactive sessions run as the person
// logged on at the console when no session user is configured, as on
// Windows: that is whose desktop a technician is helping with.
const consoleSessions = true

// errNoConsoleUser is the refusal of an interactive session when nobody is
// logged on at the machine.
var errNoConsoleUser = errors.New("nobody is logged on at this Mac's console, and interactive sessions run as " +
	"the console user: ask for an elevated session or queue the work")

// consoleAccount is the account that owns /dev/console: the person logged
// on at the Mac, or root at the login window (nobody, then).
func consoleAccount() (identity, error) {
	var st unix.Stat_t
	if err := unix.Stat("/dev/console", &st); err != nil {
		return identity{}, fmt.Errorf("the console user: %w", err)
	}
	if st.Uid == 0 {
		return identity{}, errNoConsoleUser
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10))
	if err != nil {
		return identity{}, fmt.Errorf("the console user (uid %d): %w", st.Uid, err)
	}
	if strings.HasPrefix(u.Username, "_") { // _mbsetupuser: the setup assistant
		return identity{}, errNoConsoleUser
	}
	return lookup(u.Username)
}

// defaultShell is macOS' login shell since 10.15.
const defaultShell = "/bin/zsh"

// loginShell asks Directory Services for a user's login shell: macOS
// keeps accounts there, not in /etc/passwd.
func loginShell(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/dscl", ".", "-read", "/Users/"+name, "UserShell").Output()
	if err != nil {
		return ""
	}
	// "UserShell: /bin/zsh"
	_, sh, ok := strings.Cut(strings.TrimSpace(string(out)), ":")
	if !ok {
		return ""
	}
	return strings.TrimSpace(sh)
}

// lockThread pins the goroutine to its OS thread.
func lockThread() { runtime.LockOSThread() }

// dropFS gives the calling thread id's identity, as pthread_setugid_np
// does (its system call, settid): macOS has per-thread credentials for
// servers acting for users, where Linux has fsuid. The kernel then checks
// the thread's file access against id, with id's group memberships. The
// caller must have locked its thread and must let it die afterwards.
func dropFS(id identity) error {
	if _, _, e := unix.Syscall(unix.SYS_SETTID, uintptr(id.uid), uintptr(id.gid), 0); e != 0 {
		return fmt.Errorf("settid: %w", e)
	}
	return nil
}

// ptySession is a terminal's processes: everything whose controlling
// terminal is the PTY. macOS has no /proc to list a session's members by
// ID, but the kernel's process table gives each process's terminal
// device, which the shell's children keep even in other process groups.
type ptySession struct {
	leader int
	tdev   int32 // the controlling terminal's device, or -1 (NODEV)
}

// newPtySession notes the leader's controlling terminal, read while the
// leader still runs.
func newPtySession(leader int) ptySession {
	p := ptySession{leader: leader, tdev: -1}
	if kp, err := unix.SysctlKinfoProc("kern.proc.pid", leader); err == nil {
		p.tdev = kp.Eproc.Tdev
	}
	return p
}

// signal sends sig to the leader's process group and to every process on
// the terminal.
func (p ptySession) signal(sig unix.Signal) {
	unix.Kill(-p.leader, sig)
	if p.tdev == -1 {
		return
	}
	procs, err := unix.SysctlKinfoProcSlice("kern.proc.all")
	if err != nil {
		return
	}
	for _, kp := range procs {
		if kp.Eproc.Tdev == p.tdev && kp.Proc.P_pid > 1 {
			unix.Kill(int(kp.Proc.P_pid), sig)
		}
	}
}
