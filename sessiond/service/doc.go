// Package service makes sessiond a service of the operating system, so
// the agent starts at boot, runs as the machine's highest account and is
// restarted when it fails: a Windows service under the Service Control
// Manager (LocalSystem, automatic start, restart after 5 s, 30 s and 60 s),
// or a launchd daemon on macOS (RunAtLoad, KeepAlive unless it exits
// cleanly). `sessiond install` and `sessiond uninstall` (package cli) use
// it, and on Windows `sessiond run` hands the agent to Run when the SCM
// started it.
//
// Everything install decides is plain data computed on any system by
// NewPlan: where the binary is copied, the command line the service runs,
// the recovery actions, the state directory's ACL, the launchd plist.
// `sessiond install --print` prints it, and the unit tests check it on
// Linux. The calls into the SCM, SetNamedSecurityInfo and launchctl sit
// behind small interfaces (scm, launchctl), a few lines each, so the
// order of install and its undoing on failure are tested on Linux too;
// what only Windows or macOS can run is tested under Wine where Wine
// allows (see the _windows_test files).
//
// Why golang.org/x/sys/windows/svc and not github.com/kardianos/service,
// which would serve Windows, launchd and systemd behind one API: it hides
// exactly the decisions this package makes and tests. It sets one restart
// delay, not three with a reset period; it does not accept
// SERVICE_CONTROL_PRESHUTDOWN; it leaves the state directory's ACL and the
// copy of the binary to the caller; its plist is its own template; and
// its per-system code builds only on its system, so none of it could be
// checked on Linux. The SCM part here is about a hundred lines.
//
// Linux: systemd units belong to another change (issue 14, "Services on
// Linux"); until then NewPlan says so for linux (ErrSystemdNotBuilt), and
// the verbs and flags are already the shared ones.
package service
