package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Systemctl runs systemctl with args and returns what it wrote to its
// standard output, also when it exits with an error (is-active says
// "failed" with exit status 3). Command is the real one.
type Systemctl func(args ...string) (string, error)

// commandWait bounds one systemctl call: `disable --now` waits for the
// unit to stop, which systemd bounds at the unit's TimeoutStopSec (90 s
// by default).
const commandWait = 2 * time.Minute

// Command runs systemctl; an error carries its standard error.
func Command(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "systemctl", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Booted reports whether systemd manages this system: /run/systemd/system
// exists only then (sd_booted(3)). In a container started without it, or
// under another init, systemctl cannot start anything.
func Booted() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// Manager installs, starts and removes units through Systemctl.
type Manager struct {
	// Systemctl runs systemctl. It must not be nil.
	Systemctl Systemctl
	// Dir is where unit files are written. Empty means Dir
	// (/etc/systemd/system); tests use a temporary directory.
	Dir string
	// Settle is how long Start watches a unit it started before it must
	// be active: long enough for a daemon that cannot start to exit, and
	// for systemd to show it failed or waiting to restart. Zero checks
	// at once.
	Settle time.Duration
}

// path is where the unit called name is written.
func (m *Manager) path(name string) string {
	if m.Dir == "" {
		return Dir + "/" + name
	}
	return filepath.Join(m.Dir, name)
}

// Installed reports whether a unit called name exists: its file in Dir,
// or a unit systemd loads under that name from elsewhere (a package's).
func (m *Manager) Installed(name string) (bool, error) {
	if _, err := os.Lstat(m.path(name)); err == nil {
		return true, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	out, err := m.Systemctl("show", "--property=LoadState", "--value", name)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(out) != "not-found", nil
}

// Write writes u's file, readable by all (0644) as systemd wants it, and
// has systemd read it. If systemd cannot, the file is removed again, so
// that a later install does not find a unit it never started.
func (m *Manager) Write(u *Unit) error {
	path := m.path(u.Name)
	if err := WriteFile(path, u.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing the unit %s: %w", u.Name, err)
	}
	if _, err := m.Systemctl("daemon-reload"); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// Start enables the unit called name, so it starts at boot, and starts
// it now; then, after Settle, it checks that the unit is still active,
// neither failed nor waiting to be restarted.
func (m *Manager) Start(name string) error {
	if _, err := m.Systemctl("enable", "--now", name); err != nil {
		return err
	}
	time.Sleep(m.Settle)
	out, err := m.Systemctl("is-active", name)
	if state := strings.TrimSpace(out); state != "active" {
		if state == "" {
			return err
		}
		return fmt.Errorf("%s is %s %v after it started, not active (journalctl -u %s says why)", name, state, m.Settle, name)
	}
	return nil
}

// Remove stops and disables the unit called name, deletes its file and
// has systemd forget it. Each step is taken even when one before failed:
// a unit that does not stop is still disabled and its file removed, so it
// cannot start at the next boot. The errors are joined.
func (m *Manager) Remove(name string) error {
	var errs []error
	if _, err := m.Systemctl("disable", "--now", name); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(m.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("removing the unit %s: %w", name, err))
	}
	if _, err := m.Systemctl("daemon-reload"); err != nil {
		errs = append(errs, err)
	}
	// A unit that failed stays listed (systemctl --failed) after its file
	// is gone, until its failure is reset; one that never failed is
	// unknown by now, and systemctl says so: not an error here.
	m.Systemctl("reset-failed", name)
	return errors.Join(errs...)
}
