package systemd_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/sessiond/service/systemd"
	"github.com/readymesh/readymesh/sessiond/service/systemd/systemdtest"
)

var unit = &systemd.Unit{Name: "readymesh-test.service", Sections: []systemd.Section{
	{Name: "Service", Directives: []systemd.Directive{{Key: "ExecStart", Value: "/bin/true"}}},
}}

// TestManager: a unit is written, reloaded, enabled and started, then
// checked active; Remove disables it, deletes its file and reloads.
func TestManager(t *testing.T) {
	fake := &systemdtest.Fake{}
	m := &systemd.Manager{Systemctl: fake.Run, Dir: testdir.New(t)}
	path := filepath.Join(m.Dir, unit.Name)
	if ok, err := m.Installed(unit.Name); ok || err != nil {
		t.Fatalf("Installed before writing = %v, %v", ok, err)
	}
	if err := m.Write(unit); err != nil {
		t.Fatal(err)
	}
	if raw, err := os.ReadFile(path); err != nil || string(raw) != string(unit.Bytes()) {
		t.Errorf("unit file %q, %v; want the unit", raw, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("unit file mode %v, %v; want 0644", fi.Mode(), err)
	}
	if ok, err := m.Installed(unit.Name); !ok || err != nil {
		t.Errorf("Installed after writing = %v, %v", ok, err)
	}
	if err := m.Start(unit.Name); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(unit.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unit file after Remove: %v", err)
	}
	want := []string{
		"show --property=LoadState --value readymesh-test.service",
		"daemon-reload",
		"enable --now readymesh-test.service",
		"is-active readymesh-test.service",
		"disable --now readymesh-test.service",
		"daemon-reload",
		"reset-failed readymesh-test.service",
	}
	if !slices.Equal(fake.Calls, want) {
		t.Errorf("systemctl calls\n%q\nwant\n%q", fake.Calls, want)
	}
}

// TestManagerFailures: what goes wrong is said, and Remove takes every
// step even when one fails.
func TestManagerFailures(t *testing.T) {
	t.Run("a unit from elsewhere", func(t *testing.T) {
		fake := &systemdtest.Fake{}
		fake.Know(unit.Name)
		m := &systemd.Manager{Systemctl: fake.Run, Dir: testdir.New(t)}
		if ok, err := m.Installed(unit.Name); !ok || err != nil {
			t.Errorf("Installed with a unit systemd knows from elsewhere = %v, %v", ok, err)
		}
	})
	t.Run("dies at once", func(t *testing.T) {
		fake := &systemdtest.Fake{StartsAs: "activating"}
		m := &systemd.Manager{Systemctl: fake.Run, Dir: testdir.New(t)}
		err := m.Start(unit.Name)
		if err == nil || !strings.Contains(err.Error(), "readymesh-test.service is activating 0s after it started, not active (journalctl -u readymesh-test.service says why)") {
			t.Errorf("Start of a unit that died: %v", err)
		}
	})
	t.Run("does not stop", func(t *testing.T) {
		fake := &systemdtest.Fake{Fail: "disable --now readymesh-test.service"}
		m := &systemd.Manager{Systemctl: fake.Run, Dir: testdir.New(t)}
		if err := m.Write(unit); err != nil {
			t.Fatal(err)
		}
		err := m.Remove(unit.Name)
		if err == nil || !strings.Contains(err.Error(), "Job for the unit failed") {
			t.Errorf("Remove: %v, want disable's error", err)
		}
		if _, err := os.Stat(filepath.Join(m.Dir, unit.Name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the unit file stayed after disable failed (%v): it would start at the next boot", err)
		}
		if last := fake.Calls[len(fake.Calls)-2]; last != "daemon-reload" {
			t.Errorf("calls %q: want a daemon-reload after the file went", fake.Calls)
		}
	})
}
