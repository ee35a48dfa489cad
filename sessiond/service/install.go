package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/readymesh/readymesh/sessiond/service/systemd"
)

// system is one operating system's service manager as Install and
// Uninstall use it; scm.go and launchd.go have the two there are.
type system interface {
	// elevated says why this process may not install, or nil.
	elevated() error
	// installed reports whether the service is registered.
	installed(p *Plan) (bool, error)
	// prepare makes the state directory, readable by administrators only,
	// and whatever else must exist before the agent enrols.
	prepare(p *Plan) error
	// register registers the service (not started).
	register(p *Plan) error
	// start starts the registered service.
	start(p *Plan) error
	// remove stops and unregisters the service.
	remove(p *Plan) error
}

// Agent files: a directory holding one of these is a state directory,
// and purge removes nothing else. (Package sessiond names them; this
// package does not import it.)
var agentFiles = []string{"agent.key", "agent.db"}

// Install installs p on this system: checks that this process may and
// that no sessiond service is registered, prepares the state directory,
// calls enroll (which enrols the agent there, or finds it enrolled), copies
// the binary, registers the service and starts it. Progress goes to out.
//
// If enroll fails, a state directory Install made is removed again. If a
// later step fails, the service is unregistered again, but the state
// directory stays enrolled: the error says to install again without a
// token.
func Install(ctx context.Context, p *Plan, enroll func(context.Context) error, out io.Writer) error {
	sys, err := host(p)
	if err != nil {
		return err
	}
	return install(ctx, sys, p, enroll, out)
}

// Uninstall stops and unregisters the service and removes the installed
// binary; with purge it also removes the state directory (the agent's
// key: the machine must be enrolled anew) and the log.
func Uninstall(p *Plan, purge bool, out io.Writer) error {
	sys, err := host(p)
	if err != nil {
		return err
	}
	return uninstall(sys, p, purge, out)
}

// host is this system's service manager, if p is for this system.
func host(p *Plan) (system, error) {
	if p.OS != runtime.GOOS {
		return nil, fmt.Errorf("sessiond install: this plan is for %s, and this is %s (--os is for --print)", p.OS, runtime.GOOS)
	}
	return newSystem()
}

func install(ctx context.Context, sys system, p *Plan, enroll func(context.Context) error, out io.Writer) error {
	if err := sys.elevated(); err != nil {
		return fmt.Errorf("sessiond install: %w", err)
	}
	if ok, err := sys.installed(p); err != nil {
		return fmt.Errorf("sessiond install: %w", err)
	} else if ok {
		return fmt.Errorf("sessiond install: sessiond is installed already (%s); run sessiond uninstall first", p.serviceName())
	}
	_, err := os.Stat(p.StateDir)
	made := errors.Is(err, os.ErrNotExist)
	if err := sys.prepare(p); err != nil {
		return fmt.Errorf("sessiond install: state directory %s: %w", p.StateDir, err)
	}
	if err := enroll(ctx); err != nil {
		return removeMade(p.StateDir, made, err)
	}
	kept := fmt.Sprintf("the state directory %s stays enrolled: once the cause is fixed, run sessiond install again without --token", p.StateDir)
	if err := systemd.CopyExe(p.Source, p.Exe); err != nil {
		return fmt.Errorf("sessiond install: copying the binary to %s: %w; %s", p.Exe, err, kept)
	}
	if err := sys.register(p); err != nil {
		return fmt.Errorf("sessiond install: %w; %s", err, kept)
	}
	if err := sys.start(p); err != nil {
		if rerr := sys.remove(p); rerr != nil {
			return fmt.Errorf("sessiond install: %w; removing the service again failed too (%v): run sessiond uninstall; %s",
				err, rerr, kept)
		}
		return fmt.Errorf("sessiond install: %w; the service was removed again, and %s", err, kept)
	}
	fmt.Fprintf(out, "installed and started %s: %s, state in %s, log in %s\n", p.serviceName(), p.Exe, p.StateDir, p.logWhere())
	return nil
}

// removeMade removes the state directory dir again if install made it
// (made), after the enrolment into it failed with err. It returns err,
// joined by the removal's error if dir could not be removed: a
// half-enrolled directory stays behind.
func removeMade(dir string, made bool, err error) error {
	if !made {
		return err
	}
	if rerr := os.RemoveAll(dir); rerr != nil {
		return fmt.Errorf("%w; removing the state directory %s again failed too: %w", err, dir, rerr)
	}
	return err
}

func uninstall(sys system, p *Plan, purge bool, out io.Writer) error {
	if err := sys.elevated(); err != nil {
		return fmt.Errorf("sessiond uninstall: %w", err)
	}
	ok, err := sys.installed(p)
	switch {
	case err != nil:
		return fmt.Errorf("sessiond uninstall: %w", err)
	case ok:
		if err := sys.remove(p); err != nil {
			return fmt.Errorf("sessiond uninstall: %w", err)
		}
		fmt.Fprintf(out, "stopped and removed %s\n", p.serviceName())
	case !purge:
		return fmt.Errorf("sessiond uninstall: sessiond is not installed (no %s)", p.serviceName())
	}
	if err := os.Remove(p.Exe); err == nil {
		fmt.Fprintf(out, "removed %s\n", p.Exe)
	} else if !errors.Is(err, os.ErrNotExist) {
		// Windows refuses to delete the binary this command runs from.
		fmt.Fprintf(out, "could not remove %s (%v): delete it once this command has ended\n", p.Exe, err)
	}
	if !purge {
		fmt.Fprintf(out, "kept the state directory %s (the machine's key and enrolment): sessiond install without --token reuses it; uninstall --purge removes it\n", p.StateDir)
		return nil
	}
	return purgeState(p, out)
}

// purgeState removes the state directory and the log, refusing a
// directory that holds no agent files, so a mistyped --state cannot
// remove anything else.
func purgeState(p *Plan, out io.Writer) error {
	entries, err := os.ReadDir(p.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "no state directory at %s\n", p.StateDir)
	} else if err != nil {
		return fmt.Errorf("sessiond uninstall: %w", err)
	} else {
		if !holdsAgent(entries) {
			return fmt.Errorf("sessiond uninstall: %s holds no %s: not a sessiond state directory, so --purge leaves it", p.StateDir, strings.Join(agentFiles, " or "))
		}
		if err := os.RemoveAll(p.StateDir); err != nil {
			return fmt.Errorf("sessiond uninstall: removing %s: %w", p.StateDir, err)
		}
		fmt.Fprintf(out, "removed the state directory %s\n", p.StateDir)
	}
	if p.LogFile == "" {
		return nil // the journal keeps the log, and rotates it
	}
	if err := os.Remove(p.LogFile); err == nil {
		fmt.Fprintf(out, "removed %s\n", p.LogFile)
	}
	return nil
}

// holdsAgent reports whether a directory with entries is a state
// directory.
func holdsAgent(entries []os.DirEntry) bool {
	for _, e := range entries {
		for _, f := range agentFiles {
			if strings.EqualFold(e.Name(), f) {
				return true
			}
		}
	}
	return false
}

// serviceName names the service in messages.
func (p *Plan) serviceName() string {
	switch {
	case p.Windows != nil:
		return "Windows service " + p.Windows.Name
	case p.Systemd != nil:
		return "systemd unit " + p.Systemd.Name
	}
	return "launchd daemon " + p.Launchd.Label
}
