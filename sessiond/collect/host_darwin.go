package collect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Host returns the collectors for the Mac the agent runs on: agent, os
// (sw_vers and sysctl), hostname, boot_id, packages (system_profiler's
// applications), updates (softwareupdate --list) and addresses.
//
// cfg.AptTimeout is the bound of one slow collector on macOS too: it
// bounds system_profiler and softwareupdate, each on its own. cfg.Root is
// not used: nothing on a Mac is read from a file tree.
func Host(cfg Config) []Collector { return macCollectors(cfg, darwinKernel{}) }

// darwinKernel reads the kernel's answers with sysctl.
type darwinKernel struct{}

var _ macKernel = darwinKernel{}

func (darwinKernel) release() (string, error) { return unix.Sysctl("kern.osrelease") }

// bootID is kern.bootsessionuuid, a UUID made at every boot. A kernel
// without it (before 10.13) gets an ID made of the boot time.
func (darwinKernel) bootID() (string, error) {
	if id, err := unix.Sysctl("kern.bootsessionuuid"); err == nil && id != "" {
		return id, nil
	}
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil {
		return "", fmt.Errorf("kern.boottime: %w", err)
	}
	return macBootIDFromTime(int64(tv.Sec), int64(tv.Usec)), nil
}

// arch is the agent's architecture, except that an amd64 agent translated
// by Rosetta (sysctl.proc_translated is 1) runs on an arm64 machine.
func (darwinKernel) arch() string {
	if runtime.GOARCH == "amd64" {
		if t, err := unix.SysctlUint32("sysctl.proc_translated"); err == nil && t == 1 {
			return "arm64"
		}
	}
	return runtime.GOARCH
}

// Load1 returns the machine's one-minute load average divided by its CPU
// count, from sysctl vm.loadavg: 1.0 means every core busy.
func Load1() (float64, error) {
	b, err := unix.SysctlRaw("vm.loadavg")
	if err != nil {
		return 0, fmt.Errorf("collect: load average: %w", err)
	}
	load, err := parseVMLoadavg(b)
	if err != nil {
		return 0, fmt.Errorf("collect: load average: %w", err)
	}
	return load / float64(runtime.NumCPU()), nil
}

// Users returns the names of the people logged in, sorted and without
// repeats: the owner of /dev/console (the person at the screen; root at
// the login window, which is nobody) and the users of the login sessions
// in utmpx (Terminal windows, ssh). It fails only when neither can be
// read.
func Users() ([]string, error) {
	var errs []error
	var sessions []string
	b, err := readLimited(macUtmpxPath, macUtmpxMax)
	switch {
	case err == nil:
		sessions = parseUtmpx(b)
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	console, err := consoleOwner()
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 2 {
		return nil, fmt.Errorf("collect: users: %w", errors.Join(errs...))
	}
	return macUsers(console, sessions), nil
}

// consoleOwner returns the name of the user owning /dev/console, which
// loginwindow hands to whoever logs in at the screen.
func consoleOwner() (string, error) {
	fi, err := os.Stat("/dev/console")
	if err != nil {
		return "", fmt.Errorf("console owner: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", errors.New("console owner: no stat data")
	}
	if st.Uid == 0 {
		return "root", nil
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10))
	if err != nil {
		return "", fmt.Errorf("console owner: %w", err)
	}
	return u.Username, nil
}
