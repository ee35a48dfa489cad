package collect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"

	"github.com/readymesh/readymesh/peer/wire"
)

// hostUpdates is the process's one Windows Update collector, shared by
// every Host call so that two agents' configurations in one process still
// never run two searches at once.
var hostUpdates = newWUACollector(comSearcher{clientID: "readymesh sessiond"})

// hostLoad smooths Load1 over the process's calls.
var hostLoad busyAverage

// firstLoadGap is how long the first Load1 call waits between its two
// samples, having no earlier one to compare with: long enough to span
// many 15.6 ms timer ticks, short enough for a heartbeat.
const firstLoadGap = 200 * time.Millisecond

// Host returns the collectors for the Windows machine the agent runs on:
// agent, os, hostname, boot_id, packages, updates and addresses, in that
// order, as on Linux. They read the registry and Windows' own APIs:
// Config.Root does not apply, and Config.AptTimeout bounds one Windows
// Update search.
func Host(cfg Config) []Collector {
	m := cfg.machine()
	return []Collector{
		Agent(cfg),
		newFunc("os", m.collectWindowsOS),
		newFunc("hostname", collectOSHostname),
		newFunc("boot_id", collectWindowsBootID),
		newFunc("packages", m.collectWindowsPackages),
		newFunc("updates", func(ctx context.Context, s *wire.Snapshot) error {
			return hostUpdates.collect(ctx, m.aptTimeout, m.log, s)
		}),
		newFunc("addresses", m.collectAddresses),
	}
}

// collectWindowsOS fills s.OS from the CurrentVersion key (see windowsOS),
// the kernel's own version (RtlGetVersion) and the native architecture.
// When the registry cannot be read, Version comes from the kernel.
func (m machine) collectWindowsOS(_ context.Context, s *wire.Snapshot) error {
	vals, readErr := readValues(registry.LOCAL_MACHINE, currentVersionKey, registry.WOW64_64KEY, currentVersionValues)
	o, mapErr := windowsOS(vals)
	v := windows.RtlGetVersion()
	o.Kernel = kernelVersion(v.MajorVersion, v.MinorVersion, v.BuildNumber)
	if o.Version == "" {
		o.Version = o.Kernel
	}
	o.Arch = nativeArch()
	s.OS = o
	if readErr != nil {
		readErr = fmt.Errorf("os: %w", readErr)
	}
	return errors.Join(readErr, mapErr)
}

// collectWindowsBootID fills s.BootID from the kernel's boot time; see
// bootID for why it is stable within a boot.
func collectWindowsBootID(_ context.Context, s *wire.Snapshot) error {
	t, bias, err := bootTime()
	if err != nil {
		return fmt.Errorf("boot id: %w", err)
	}
	s.BootID = bootID(t, bias)
	return nil
}

// collectWindowsPackages fills s.Packages from the Uninstall key in both
// registry views (see windowsPackages). One view that cannot be read
// still leaves the other's packages, with an error; so does a list cut at
// its bounds.
func (m machine) collectWindowsPackages(_ context.Context, s *wire.Snapshot) error {
	var all []uninstallEntry
	var errs []error
	opened := 0
	for _, view := range []struct {
		name   string
		access uint32
	}{{"64-bit", registry.WOW64_64KEY}, {"32-bit", registry.WOW64_32KEY}} {
		entries, truncated, err := readUninstall(registry.LOCAL_MACHINE, uninstallKey, view.access)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s view: %w", view.name, err))
		}
		if entries != nil {
			opened++
		}
		if truncated {
			errs = append(errs, fmt.Errorf("%s view: more than %d entries, read the first %d", view.name, maxUninstallKeys, maxUninstallKeys))
		}
		all = append(all, entries...)
	}
	if opened == 0 && len(errs) > 0 {
		return fmt.Errorf("packages: %w", errors.Join(errs...))
	}
	pkgs, total := windowsPackages(all)
	if total > len(pkgs) {
		errs = append(errs, fmt.Errorf("%d packages, reporting the first %d by name", total, len(pkgs)))
	}
	s.Packages = pkgs
	m.log.Debug("collected packages", "count", len(pkgs), "entries", len(all))
	if len(errs) > 0 {
		return fmt.Errorf("packages: %w", errors.Join(errs...))
	}
	return nil
}

// Load1 returns the share of CPU time the machine spent busy, smoothed
// over about a minute (see busyAverage): 1.0 means every core busy. The
// first call of the process has no earlier sample, so it takes two,
// firstLoadGap apart, and answers with that interval's share.
func Load1() (float64, error) {
	t, err := systemTimes()
	if err != nil {
		return 0, fmt.Errorf("collect: load: %w", err)
	}
	if v, ok := hostLoad.add(t, time.Now()); ok {
		return v, nil
	}
	time.Sleep(firstLoadGap)
	if t, err = systemTimes(); err != nil {
		return 0, fmt.Errorf("collect: load: %w", err)
	}
	if v, ok := hostLoad.add(t, time.Now()); ok {
		return v, nil
	}
	return 0, fmt.Errorf("collect: load: the CPU time counters did not advance in %v", firstLoadGap)
}

// Users returns the people logged on, as DOMAIN\user, sorted and without
// repeats: the users of the active and disconnected Remote Desktop
// Services sessions, the console's included (see sessionUsers).
func Users() ([]string, error) {
	ss, err := wtsSessions()
	if err != nil {
		return nil, fmt.Errorf("collect: users: %w", err)
	}
	return sessionUsers(ss), nil
}
