//go:build !windows

package service

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/sessiond/service/installtest"
	"github.com/readymesh/readymesh/sessiond/service/systemd"
	"github.com/readymesh/readymesh/sessiond/service/systemd/systemdtest"
)

// linuxTestPlan is a linux plan whose binary, state and unit live under
// a temporary root, with a source binary there, and a systemd system
// whose systemctl is fake.
func linuxTestPlan(t *testing.T, fake *systemdtest.Fake) (*Plan, *systemdSystem) {
	t.Helper()
	root, p := planUnder(t, "linux", "home/sessiond")
	p.Exe = filepath.Join(root, "opt", "bin", "sessiond")
	units := filepath.Join(root, "etc", "systemd", "system")
	os.MkdirAll(units, 0o755)
	sys := &systemdSystem{units: &systemd.Manager{Systemctl: fake.Run, Dir: units},
		euid: func() int { return 0 }, booted: func() bool { return true }}
	return p, sys
}

// TestSystemdInstallUninstall: install checks that no unit is there,
// prepares the state directory, enrols, copies the binary, writes the
// unit, reloads, enables and starts it and checks it runs; uninstall
// disables it and removes the unit and the binary, keeping the state
// unless purged.
func TestSystemdInstallUninstall(t *testing.T) {
	fake := &systemdtest.Fake{}
	p, sys := linuxTestPlan(t, fake)
	unitPath := filepath.Join(sys.units.Dir, SystemdUnit)
	var enrolled int
	var out strings.Builder
	if err := install(context.Background(), sys, p, enrolIn(p.StateDir, &enrolled, nil), &out); err != nil {
		t.Fatal(err)
	}
	if enrolled != 1 || installtest.Mode(t, p.StateDir) != 0o700 {
		t.Errorf("enrolled %d times, state directory mode %04o; want once, 0700", enrolled, installtest.Mode(t, p.StateDir))
	}
	installtest.File(t, "installed binary", p.Exe, []byte("#!binary"), 0o755)
	installtest.File(t, "unit", unitPath, p.Systemd.Bytes(), 0o644)
	want := []string{
		"show --property=LoadState --value readymesh-sessiond.service",
		"daemon-reload",
		"enable --now readymesh-sessiond.service",
		"is-active readymesh-sessiond.service",
	}
	if !slices.Equal(fake.Calls, want) {
		t.Errorf("systemctl calls\n%q\nwant\n%q", fake.Calls, want)
	}
	if !strings.Contains(out.String(), "installed and started systemd unit readymesh-sessiond.service: "+p.Exe+
		", state in "+p.StateDir+", log in the journal (journalctl -u readymesh-sessiond.service)") {
		t.Errorf("install said %q", out.String())
	}

	checkReinstallUninstall(t, sys, p, &enrolled, "installed already (systemd unit readymesh-sessiond.service)", &fake.Calls,
		[]string{"disable --now readymesh-sessiond.service", "daemon-reload", "reset-failed readymesh-sessiond.service"},
		unitPath, p.Exe)
	out.Reset()
	if err := uninstall(sys, p, true, &out); err != nil {
		t.Fatal(err)
	}
	installtest.Gone(t, "uninstall --purge", p.StateDir)
	if !strings.Contains(out.String(), "removed the state directory "+p.StateDir) {
		t.Errorf("uninstall --purge said %q", out.String())
	}
}

// TestSystemdInstallFailures: each failure leaves what it says it
// leaves.
func TestSystemdInstallFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		euid      int
		booted    bool
		fake      systemdtest.Fake
		err       string
		calls     []string
		stateLeft bool // the enrolled state directory stays
	}{
		{name: "not root", euid: 1000, booted: true, err: "needs root: run it with sudo"},
		{name: "no systemd", booted: false, err: "systemd does not manage this system (no /run/systemd/system)"},
		{name: "agent dies at once", booted: true, fake: systemdtest.Fake{StartsAs: "activating"},
			err: "readymesh-sessiond.service is activating 0s after it started, not active (journalctl -u readymesh-sessiond.service says why); the service was removed again",
			calls: []string{"show --property=LoadState --value readymesh-sessiond.service", "daemon-reload",
				"enable --now readymesh-sessiond.service", "is-active readymesh-sessiond.service",
				"disable --now readymesh-sessiond.service", "daemon-reload", "reset-failed readymesh-sessiond.service"},
			stateLeft: true},
		{name: "reload fails", booted: true, fake: systemdtest.Fake{Fail: "daemon-reload"},
			err:       "systemctl daemon-reload: exit status 1: Job for the unit failed; the state directory",
			calls:     []string{"show --property=LoadState --value readymesh-sessiond.service", "daemon-reload"},
			stateLeft: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := tc.fake
			p, sys := linuxTestPlan(t, &fake)
			sys.euid = func() int { return tc.euid }
			sys.booted = func() bool { return tc.booted }
			var enrolled int
			err := install(context.Background(), sys, p, enrolIn(p.StateDir, &enrolled, nil), &strings.Builder{})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("install: %v, want %q", err, tc.err)
			}
			if !slices.Equal(fake.Calls, tc.calls) {
				t.Errorf("systemctl calls\n%q\nwant\n%q", fake.Calls, tc.calls)
			}
			installtest.Gone(t, "a failed install", filepath.Join(sys.units.Dir, SystemdUnit))
			_, serr := os.Stat(filepath.Join(p.StateDir, "agent.key"))
			if (serr == nil) != tc.stateLeft {
				t.Errorf("agent key after a failed install: %v; want it kept: %v", serr, tc.stateLeft)
			}
		})
	}
}
