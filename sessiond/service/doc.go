// Package service makes sessiond a service of the operating system, so
// the agent starts at boot, runs as the machine's highest account and is
// restarted when it fails: a Windows service under the Service Control
// Manager (LocalSystem, automatic start, restart after 5 s, 30 s and 60 s),
// a launchd daemon on macOS (RunAtLoad, KeepAlive unless it exits
// cleanly), or a systemd unit on Linux (enabled, Restart=on-failure every
// 10 s without giving up). `sessiond install` and `sessiond uninstall`
// (package cli) use it, and on Windows `sessiond run` hands the agent to
// Run when the SCM started it.
//
// Everything install decides is plain data computed on any system by
// NewPlan: where the binary is copied, the command line the service runs,
// the recovery actions, the state directory's ACL, the launchd plist, the
// systemd unit. `sessiond install --print` prints it (--os plans for
// another system), and the unit tests check it on Linux, the unit also
// with systemd-analyze verify. The calls into the SCM,
// SetNamedSecurityInfo, launchctl and systemctl sit behind small
// interfaces (scm, launchctl, systemd.Systemctl), a few lines each, so the
// order of install and its undoing on failure are tested without them;
// what only Windows or macOS can run is tested under Wine where Wine
// allows (see the _windows_test files).
//
// When the agent is asked to stop, its context ends with a cause that
// says why (context.Cause): ErrShutdown when the Windows SCM stops it for
// a shutdown, ErrStopRequested for the SCM's Stop or a stop signal (the
// SIGTERM systemd and launchd send, a person's SIGINT), so the agent can
// tell the broker "shutdown" rather than "stopped". On Windows the
// service also accepts power events and hands them to package sysevents,
// since a service's control handler is the only place Windows announces
// sleep and resume to it.
//
// The agent's systemd unit has no sandboxing options, on purpose: the
// sessions the agent runs are its children and would inherit them, and
// an elevated session must be able to change /usr and /etc, see the
// machine's real /tmp and use sudo. agentUnit writes the reasons into the
// unit itself. Package systemd, which writes units and drives systemctl,
// is shared with `broker install`, whose unit is the opposite: a network
// daemon under its own user with every protection that fits.
//
// Why golang.org/x/sys/windows/svc and not github.com/kardianos/service,
// which would serve Windows, launchd and systemd behind one API: it hides
// exactly the decisions this package makes and tests. It sets one restart
// delay, not three with a reset period; it does not accept
// SERVICE_CONTROL_PRESHUTDOWN; it leaves the state directory's ACL and the
// copy of the binary to the caller; its plist is its own template; and
// its per-system code builds only on its system, so none of it could be
// checked on Linux. The SCM part here is about a hundred lines.
package service
