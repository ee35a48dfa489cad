package collect

// The macOS collectors.
//
// A Mac has no os-release, no /proc and no package database a collector
// could read as a file: what it is comes from commands (sw_vers,
// system_profiler, softwareupdate) and from the kernel through sysctl. The
// commands' outputs are parsed by pure functions in the mac_*.go files,
// which compile everywhere so the parsers and the collectors around them
// are tested on Linux with recorded outputs and stand-in scripts. Only the
// sysctl reads, the console's owner and the login records need a Mac; they
// live in host_darwin.go behind macKernel.
//
// Every command runs with an absolute path (the agent runs as root, so a
// PATH entry must not choose what it executes), in the C locale, with its
// output bounded in bytes and, for the slow ones, in time by
// Config.AptTimeout.

import (
	"context"
	"errors"
	"fmt"

	"github.com/readymesh/readymesh/peer/wire"
)

// macKernel is what the macOS collectors read from the kernel rather than
// from a command. host_darwin.go answers with sysctl; tests with fixed
// values.
type macKernel interface {
	// release is kern.osrelease, what uname -r prints ("23.2.0").
	release() (string, error)
	// bootID changes at every boot.
	bootID() (string, error)
	// arch is the machine's architecture in GOARCH terms, which is not
	// the agent's when an amd64 agent runs under Rosetta on Apple silicon.
	arch() string
}

// macMachine is a machine whose collectors describe macOS.
type macMachine struct {
	machine
	kernel macKernel
}

// macCollectors returns the collectors for a Mac: agent, os, hostname,
// boot_id, packages, updates and addresses, in that order, as Linux does.
func macCollectors(cfg Config, k macKernel) []Collector {
	return macMachine{machine: cfg.machine(), kernel: k}.collectors(cfg)
}

// collectors returns m's collectors, with cfg's agent collector first.
func (m macMachine) collectors(cfg Config) []Collector {
	return []Collector{
		Agent(cfg),
		newFunc("os", m.collectMacOS),
		newFunc("hostname", collectOSHostname),
		newFunc("boot_id", m.collectMacBootID),
		newFunc("packages", m.collectMacApps),
		newFunc("updates", m.collectMacUpdates),
		newFunc("addresses", m.collectAddresses),
	}
}

// collectMacBootID fills s.BootID.
func (m macMachine) collectMacBootID(_ context.Context, s *wire.Snapshot) error {
	id, err := m.kernel.bootID()
	if err != nil {
		return fmt.Errorf("boot id: %w", err)
	}
	if id == "" {
		return errors.New("boot id is empty")
	}
	s.BootID = id
	return nil
}

// macBootIDFromTime derives a boot ID from the boot time (kern.boottime),
// for a kernel without kern.bootsessionuuid. The microseconds make two
// boots in the same second distinct.
func macBootIDFromTime(sec, usec int64) string {
	return fmt.Sprintf("boottime-%d.%06d", sec, usec)
}
