package channel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// consoleSessions is false: a Linux server has no one console user, so
// interactive sessions run as the configured session user (nobody by
// default).
const consoleSessions = false

// consoleAccount is never called on Linux (consoleSessions is false).
func consoleAccount() (identity, error) { return identity{}, errNoConsoleUser }

// errNoConsoleUser is the refusal of an interactive session when nobody is
// logged on at the machine.
var errNoConsoleUser = errors.New("nobody is logged on at this machine's console, and interactive sessions run as " +
	"the console user: ask for an elevated session or queue the work")

// defaultShell is the login shell of an account whose own is unusable.
const defaultShell = "/bin/sh"

// loginShell reads a user's login shell from /etc/passwd.
func loginShell(name string) string {
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

// lockThread pins the goroutine to its OS thread.
func lockThread() { runtime.LockOSThread() }

// dropFS gives the calling thread id's filesystem identity: no
// supplementary groups, fsgid and fsuid of id. These system calls act on
// the calling thread only (raw, unlike Go's syscall.Setgroups, which
// changes every thread), so the caller must have locked its thread and
// must let it die afterwards.
func dropFS(id identity) error {
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	unix.Setfsgid(int(id.gid))
	unix.Setfsuid(int(id.uid))
	// setfs*id report the previous value and never fail; ask again to
	// check the change took.
	if prev, _ := unix.SetfsgidRetGid(-1); prev != int(id.gid) {
		return fmt.Errorf("fsgid is %d, not %d", prev, id.gid)
	}
	if prev, _ := unix.SetfsuidRetUid(-1); prev != int(id.uid) {
		return fmt.Errorf("fsuid is %d, not %d", prev, id.uid)
	}
	return nil
}

// ptySession is a terminal's session, named by its leader's PID: the
// session ID. It outlives the leader, so whatever the shell left behind
// is still found after it exits.
type ptySession struct{ sid int }

func newPtySession(leader int) ptySession { return ptySession{sid: leader} }

// signal sends sig to every process in the session (the PTY's shell and
// whatever it left behind: background jobs have their own process groups
// but stay in the session).
func (p ptySession) signal(sig unix.Signal) {
	sid := p.sid
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command (in parentheses): state ppid pgrp session …
		i := bytes.LastIndexByte(raw, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(raw[i+1:]))
		if len(f) > 3 && f[3] == strconv.Itoa(sid) {
			unix.Kill(pid, sig)
		}
	}
}
