package collect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/readymesh/readymesh/peer/wire"
)

// collectHostname fills s.Hostname from the kernel's hostname below the
// root. On the host itself it falls back to os.Hostname when /proc is not
// mounted.
func (m machine) collectHostname(_ context.Context, s *wire.Snapshot) error {
	name, err := m.readTrimmed("/proc/sys/kernel/hostname")
	if errors.Is(err, fs.ErrNotExist) && m.isHost() {
		name, err = os.Hostname()
	}
	if err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	if name == "" {
		return errors.New("hostname is empty")
	}
	s.Hostname = name
	return nil
}

// collectBootID fills s.BootID, which changes at every boot: the broker
// uses it to tell a reboot from a reconnect.
func (m machine) collectBootID(_ context.Context, s *wire.Snapshot) error {
	id, err := m.readTrimmed("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return fmt.Errorf("boot id: %w", err)
	}
	s.BootID = id
	return nil
}

// collectOSHostname fills s.Hostname with the name the system gives
// (os.Hostname: GetComputerNameEx on Windows, kern.hostname on macOS),
// for systems with no root to read below.
func collectOSHostname(_ context.Context, s *wire.Snapshot) error {
	name, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	if name == "" {
		return errors.New("hostname is empty")
	}
	s.Hostname = name
	return nil
}
