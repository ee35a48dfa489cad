package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/readymesh/readymesh/broker"
	"github.com/readymesh/readymesh/sessiond/service/systemd"
)

// broker install and broker uninstall make the broker a systemd service
// on Linux, the production system for brokers. The unit is plain data
// (install_unit.go), printed by --print on any system; the system calls
// go through a serviceHost, so the order of install and its undoing is
// unit-tested with a fake systemctl. The unit writer and systemctl driver
// are the agent's (package sessiond/service/systemd): one quoting of
// command lines, one way to undo a failed start.

// serviceSettle is how long install watches the started broker: it opens
// its store and binds its ports within it, so a broker that cannot (a
// port taken, a bad flag) has exited by then.
const serviceSettle = 3 * time.Second

// install installs the broker as a systemd service, or with --print shows
// what it would install.
func install(args []string) error {
	plan, printOnly, err := parseInstall(args)
	if err != nil {
		return err
	}
	if printOnly {
		return plan.print(os.Stdout)
	}
	if runtime.GOOS != "linux" {
		return fmt.Errorf("install: the broker is installed as a systemd service, on Linux; this is %s (--print shows the unit on any system)", runtime.GOOS)
	}
	return installService(systemHost(), plan, os.Stdout)
}

// parseInstall reads install's command line: its own flags and broker
// run's, which go onto the unit's command line.
func parseInstall(args []string) (*servicePlan, bool, error) {
	fs := newFlags("install")
	maxAgents := fs.Int("max-agents", defaultMaxAgents, fmt.Sprintf("`agents` the broker is sized for: its open-file limit is %d per agent, plus --http-max-conns, plus %d", filesPerAgent, fileMargin))
	printOnly := fs.Bool("print", false, "print the unit and what install would do, and install nothing")
	defineRunFlags(fs)
	if err := parseFlags(fs, args, 0); err != nil {
		return nil, false, err
	}
	src, err := os.Executable()
	if err != nil {
		return nil, false, fmt.Errorf("install: finding this binary: %w", err)
	}
	plan, err := newServicePlan(fs, src, *maxAgents)
	if err != nil {
		return nil, false, fmt.Errorf("install: %w", err)
	}
	return plan, *printOnly, nil
}

// uninstall removes the service, and with --purge the broker's data.
func uninstall(args []string) error {
	fs := newFlags("uninstall")
	purge := fs.Bool("purge", false, "also remove the data directory: the broker's key, store and admin credential")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	// The unit's name and the binary's and data's places are fixed: a plan
	// without run flags finds what any install put there.
	src, _ := os.Executable()
	plan, err := newServicePlan(newFlags("uninstall"), src, defaultMaxAgents)
	if err != nil {
		return err
	}
	return uninstallService(systemHost(), plan, *purge, os.Stdout)
}

// serviceHost is the system install changes: systemd, the process's
// rights and the user database.
type serviceHost struct {
	units *systemd.Manager
	// euid is the effective user ID of this process.
	euid func() int
	// booted reports whether systemd manages this system.
	booted func() bool
	// userExists reports whether the account name exists.
	userExists func(name string) (bool, error)
	// addUser makes name a system account and group, home home, no login.
	addUser func(name, home string) error
}

// systemHost is this machine.
func systemHost() *serviceHost {
	return &serviceHost{units: &systemd.Manager{Systemctl: systemd.Command, Settle: serviceSettle},
		euid: os.Geteuid, booted: systemd.Booted, userExists: userExists, addUser: addSystemUser}
}

// allowed says why this process may not install or uninstall, or nil.
func (h *serviceHost) allowed() error {
	if h.euid() != 0 {
		return errors.New("it needs root: run it with sudo")
	}
	if !h.booted() {
		return errors.New("systemd does not manage this system (no /run/systemd/system): run the broker from its own init system")
	}
	return nil
}

// installService checks that this process may and that no broker unit is
// there, makes the service account when missing, copies the binary,
// writes the unit and starts it. A unit that does not stay up is removed
// again; the account, the binary and the data directory stay.
func installService(h *serviceHost, p *servicePlan, out io.Writer) error {
	if err := h.allowed(); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if ok, err := h.units.Installed(p.Unit.Name); err != nil {
		return fmt.Errorf("install: %w", err)
	} else if ok {
		return fmt.Errorf("install: %s is installed already; run broker uninstall first", p.Unit.Name)
	}
	if err := ensureUser(h, p, out); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := systemd.CopyExe(p.Source, p.Exe); err != nil {
		return fmt.Errorf("install: copying the binary to %s: %w", p.Exe, err)
	}
	if err := h.units.Write(p.Unit); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := h.units.Start(p.Unit.Name); err != nil {
		if rerr := h.units.Remove(p.Unit.Name); rerr != nil {
			return fmt.Errorf("install: %w; removing the unit again failed too (%v): run broker uninstall", err, rerr)
		}
		return fmt.Errorf("install: %w; the unit was removed again", err)
	}
	fmt.Fprintf(out, "installed and started %s: %s as %s, data in %s, log in the journal (journalctl -u %s)\n",
		p.Unit.Name, p.Exe, p.User, p.DataDir, p.Unit.Name)
	fmt.Fprintf(out, "log in as admin once it serves: meshctl login --credential %s\n", filepath.Join(p.DataDir, "admin.credential"))
	return nil
}

// ensureUser makes the service account unless it exists.
func ensureUser(h *serviceHost, p *servicePlan, out io.Writer) error {
	ok, err := h.userExists(p.User)
	if err != nil || ok {
		return err
	}
	if err := h.addUser(p.User, serviceHome); err != nil {
		return fmt.Errorf("making the system user %s: %w", p.User, err)
	}
	fmt.Fprintf(out, "made the system user %s\n", p.User)
	return nil
}

// uninstallService stops and removes the unit and the binary; with purge
// also the data directory. The service account stays, as packages leave
// theirs: files elsewhere may still be its.
func uninstallService(h *serviceHost, p *servicePlan, purge bool, out io.Writer) error {
	if err := h.allowed(); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	ok, err := h.units.Installed(p.Unit.Name)
	switch {
	case err != nil:
		return fmt.Errorf("uninstall: %w", err)
	case ok:
		if err := h.units.Remove(p.Unit.Name); err != nil {
			return fmt.Errorf("uninstall: %w", err)
		}
		fmt.Fprintf(out, "stopped and removed %s\n", p.Unit.Name)
	case !purge:
		return fmt.Errorf("uninstall: the broker is not installed (no %s)", p.Unit.Name)
	}
	if err := os.Remove(p.Exe); err == nil {
		fmt.Fprintf(out, "removed %s\n", p.Exe)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("uninstall: %w", err)
	}
	if !purge {
		fmt.Fprintf(out, "kept the data directory %s (the broker's key, store and admin credential): broker install reuses it; uninstall --purge removes it\n", p.DataDir)
		return nil
	}
	if err := purgeData(p.DataDir, out); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	fmt.Fprintf(out, "kept the system user %s (userdel %s removes it)\n", p.User, p.User)
	return nil
}

// purgeData removes the data directory, refusing one that holds no
// broker key or store, so a wrong directory is never removed, and then
// its parent if that is left empty.
func purgeData(dir string, out io.Writer) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "no data directory at %s\n", dir)
		return nil
	} else if err != nil {
		return err
	}
	found := false
	for _, e := range entries {
		found = found || e.Name() == broker.KeyFile || e.Name() == broker.StoreFile
	}
	if !found {
		return fmt.Errorf("%s holds no %s or %s: not a broker's data directory, so --purge leaves it", dir, broker.KeyFile, broker.StoreFile)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	fmt.Fprintf(out, "removed the data directory %s\n", dir)
	os.Remove(filepath.Dir(dir)) // /var/lib/readymesh, unless an agent's state is in it too
	return nil
}

// userExists reports whether the account name exists.
func userExists(name string) (bool, error) {
	_, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return false, nil
	}
	return err == nil, err
}

// addSystemUser runs useradd for a system account with a group of its
// own, no home directory made and no login shell.
func addSystemUser(name, home string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
		"--shell", "/usr/sbin/nologin", "--comment", "readymesh broker", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("useradd: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
