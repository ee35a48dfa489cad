package service

import (
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/readymesh/readymesh/sessiond/service/systemd"
)

// SystemdUnit is the name of the agent's systemd unit on Linux, the
// Windows service's name with systemd's suffix.
const SystemdUnit = WindowsName + ".service"

// linuxExe is where the agent's binary is kept on Linux: /opt, which only
// root can write on every distribution (Debian hands /usr/local to the
// staff group on older releases).
const linuxExe = "/opt/readymesh/bin/sessiond"

// linuxStateDir is the usual state directory on Linux
// (sessiond.DefaultStateDir), which the unit's StateDirectory names.
const linuxStateDir = "/var/lib/readymesh/sessiond"

// linuxPlan runs the agent from a systemd unit, logging to the journal.
// Its paths are slash paths whatever system plans.
func linuxPlan(spec Spec) *Plan {
	p := &Plan{OS: "linux", StateDir: path.Clean(spec.StateDir), Source: spec.Source, Exe: linuxExe}
	p.Args = runArgs(p.StateDir, "", spec.RunArgs)
	p.Systemd = agentUnit(p)
	return p
}

// agentUnit is the agent's unit. Each choice is explained in the unit
// itself, where an administrator reading it finds it.
func agentUnit(p *Plan) *systemd.Unit {
	service := []systemd.Directive{
		{Key: "Type", Value: "simple"},
		{Key: "ExecStart", Value: systemd.Exec(append([]string{p.Exe}, p.Args...))},
		{Key: "Restart", Value: "on-failure", Why: "Restarted after a crash or an error exit, as the Windows " +
			"recovery actions and launchd's KeepAlive do; not after a clean exit, which only a stop asked for causes."},
		{Key: "RestartSec", Value: "10s", Why: "launchd's pace on macOS. A one-off crash costs ten seconds of " +
			"reachability; a crash loop costs one start and one broker handshake per machine every ten " +
			"seconds: a bad release looping on a whole fleet reaches its broker at a tenth of the fleet's " +
			"size per second, which the broker's admission rate (--accept-rate) bounds."},
		{Key: "RestartPreventExitStatus", Value: "2", Why: "Exit status 2 is a command line sessiond cannot " +
			"understand (a run flag a later release dropped, say): restarting would not change it."},
		{Key: "ExecStopPost", Value: systemd.Exec([]string{p.Exe, "exit-status", "--state", p.StateDir}), Why: "After " +
			"every stop, systemd tells sessiond how the agent's process ended (killed by a signal, an exit " +
			"status, the out-of-memory killer); the next run reports it on the machine's card."},
		{Key: "KillMode", Value: "control-group", Why: "Stopping the agent (systemctl stop, sessiond uninstall) " +
			"ends every process its sessions started: no technician's shell or command outlives the agent " +
			"that let it in."},
	}
	if p.StateDir == linuxStateDir {
		service = append(service,
			systemd.Directive{Key: "StateDirectory", Value: "readymesh/sessiond", Why: "systemd makes the " +
				"state directory before each start, root's and private (the agent's key lives there), and " +
				"knows it as the unit's."},
			systemd.Directive{Key: "StateDirectoryMode", Value: "0700"})
	}
	d := &systemd.Daemon{
		Name:        SystemdUnit,
		Header:      "Written by `sessiond install`; `sessiond uninstall` removes it, and --purge also the agent's state.",
		Description: "readymesh agent: this machine's link to its MSP's technicians",
		NetworkWhy: "The agent dials its broker at once; it redials by itself, so this only spares it a " +
			"failed first dial at boot.",
		StartLimits: []systemd.Directive{{Key: "StartLimitIntervalSec", Value: "0", Why: "Never give up " +
			"restarting: the agent is the only way to reach this machine remotely, and a machine whose agent " +
			"systemd gave up on needs someone at its keyboard. RestartSec paces the restarts instead."}},
		Service: systemd.Section{Comment: agentSandbox, Directives: service},
		BootWhy: "Started at boot, before anyone logs in.",
	}
	return d.Unit()
}

// agentSandbox says why the agent's unit has no sandboxing options.
const agentSandbox = "No sandboxing, on purpose. The agent's whole job is to run technicians' sessions " +
	"on this machine, as its users and as root, and a session is a child of the agent: it inherits " +
	"every restriction put here. ProtectSystem would make /usr, /boot and /etc read-only to elevated " +
	"sessions (no package could be installed or configuration fixed); PrivateTmp would give sessions " +
	"a /tmp of their own, not the one the machine's users and programs see; ProtectHome would hide " +
	"users' files; NoNewPrivileges would break sudo and su in a user's session; PrivateDevices, " +
	"ProtectKernelTunables, ProtectKernelModules and ProtectClock would stop the repairs (disks, " +
	"sysctl, drivers, the clock) technicians are called for; a system call filter would break the " +
	"programs they run.\n\nWhat protects the agent instead: its binary in /opt, which only root can " +
	"write; its state directory, 0700 root; and its key, which it refuses to use when others can read it."

func (p *Plan) printSystemd(pw *planWriter) {
	pw.line("unit", p.Systemd.Path())
	pw.line("then", "enrol unless the state directory is enrolled, copy the binary, write the unit, "+
		"systemctl daemon-reload, systemctl enable --now "+p.Systemd.Name)
	if pw.err == nil {
		_, pw.err = fmt.Fprintf(pw.w, "\n%s", p.Systemd.Bytes())
	}
}

// systemdSystem installs through systemctl.
type systemdSystem struct {
	units *systemd.Manager
	// euid is the effective user ID of this process.
	euid func() int
	// booted reports whether systemd manages this system.
	booted func() bool
}

var _ system = (*systemdSystem)(nil)

func (s *systemdSystem) elevated() error {
	if s.euid() != 0 {
		return errors.New("it needs root: run it with sudo")
	}
	if !s.booted() {
		return errors.New(`systemd does not manage this system (no /run/systemd/system): run "sessiond enroll" once and "sessiond run --state DIR" from its own init system`)
	}
	return nil
}

func (s *systemdSystem) installed(p *Plan) (bool, error) { return s.units.Installed(p.Systemd.Name) }

// prepare makes the state directory, 0700, before the agent's key is
// written into it (StateDirectory would make it only at the first start).
func (s *systemdSystem) prepare(p *Plan) error {
	if err := os.MkdirAll(p.StateDir, 0o700); err != nil {
		return err
	}
	return os.Chmod(p.StateDir, 0o700)
}

func (s *systemdSystem) register(p *Plan) error { return s.units.Write(p.Systemd) }

func (s *systemdSystem) start(p *Plan) error { return s.units.Start(p.Systemd.Name) }

func (s *systemdSystem) remove(p *Plan) error { return s.units.Remove(p.Systemd.Name) }
