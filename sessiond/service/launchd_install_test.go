//go:build !windows

// The install flow through launchd is tested on Unix systems only: it
// plans darwin's slash paths into a temporary directory and checks Unix
// modes, which Windows does not keep.

package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/sessiond/service/installtest"
)

// fakeLaunchctl is launchd as install sees it: it records each call and
// knows which labels are loaded.
type fakeLaunchctl struct {
	calls  []string
	loaded map[string]bool
	fail   string // a call (its arguments joined by blanks) that fails
}

func (f *fakeLaunchctl) run(args ...string) error {
	call := strings.Join(args, " ")
	f.calls = append(f.calls, call)
	if call == f.fail {
		return fmt.Errorf("launchctl %s: exit status 5: Bootstrap failed: 5: Input/output error", call)
	}
	switch args[0] {
	case "print":
		if !f.loaded[strings.TrimPrefix(args[1], "system/")] {
			return errors.New("exit status 113: Could not find service")
		}
	case "bootstrap":
		f.loaded[LaunchdLabel] = true
	case "bootout":
		delete(f.loaded, strings.TrimPrefix(args[1], "system/"))
	}
	return nil
}

// darwinTestPlan is a darwin plan whose files live under a temporary
// root, with a source binary there.
func darwinTestPlan(t *testing.T) *Plan {
	t.Helper()
	root, p := planUnder(t, "darwin", "Downloads/sessiond")
	p.Exe = filepath.Join(root, "bin", "sessiond")
	p.LogFile = filepath.Join(root, "Logs", "readymesh", "sessiond.log")
	p.Launchd.PlistPath = filepath.Join(root, "LaunchDaemons", LaunchdLabel+".plist")
	os.MkdirAll(filepath.Dir(p.Launchd.PlistPath), 0o755)
	return p
}

// TestLaunchdInstallUninstall: install prepares the state directory and
// log, enrols, copies the binary, writes the plist and bootstraps it;
// a second install is refused; uninstall boots it out and removes the
// plist and binary, keeping the state unless purged.
func TestLaunchdInstallUninstall(t *testing.T) {
	p := darwinTestPlan(t)
	lc := &fakeLaunchctl{loaded: map[string]bool{}}
	sys := &launchdSystem{launchctl: lc.run, euid: func() int { return 0 }}
	var enrolled int
	var out strings.Builder
	if err := install(context.Background(), sys, p, enrolIn(p.StateDir, &enrolled, nil), &out); err != nil {
		t.Fatal(err)
	}
	if enrolled != 1 {
		t.Errorf("enrolled %d times, want once", enrolled)
	}
	if m := installtest.Mode(t, p.StateDir); m != 0o700 {
		t.Errorf("state directory mode %04o, want 0700", m)
	}
	if m := installtest.Mode(t, p.LogFile); m != 0o600 {
		t.Errorf("log file mode %04o, want 0600", m)
	}
	installtest.File(t, "installed binary", p.Exe, []byte("#!binary"), 0o755)
	installtest.File(t, "plist", p.Launchd.PlistPath, Plist(p), 0o644)
	want := []string{"print system/io.readymesh.sessiond", "enable system/io.readymesh.sessiond", "bootstrap system " + p.Launchd.PlistPath}
	if !slices.Equal(lc.calls, want) {
		t.Errorf("launchctl calls %q, want %q", lc.calls, want)
	}
	if !strings.Contains(out.String(), "installed and started launchd daemon io.readymesh.sessiond") {
		t.Errorf("install said %q", out.String())
	}

	checkReinstallUninstall(t, sys, p, &enrolled, "installed already", &lc.calls,
		[]string{"print system/io.readymesh.sessiond", "bootout system/io.readymesh.sessiond"},
		p.Launchd.PlistPath, p.Exe)

	out.Reset()
	if err := uninstall(sys, p, true, &out); err != nil {
		t.Fatal(err)
	}
	installtest.Gone(t, "uninstall --purge", p.StateDir, p.LogFile)
}

// TestInstallFailures: each failure leaves what it says it leaves.
func TestInstallFailures(t *testing.T) {
	t.Run("not root", func(t *testing.T) {
		p := darwinTestPlan(t)
		lc := &fakeLaunchctl{loaded: map[string]bool{}}
		var enrolled int
		err := install(context.Background(), &launchdSystem{launchctl: lc.run, euid: func() int { return 501 }}, p,
			enrolIn(p.StateDir, &enrolled, nil), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "needs root: run it with sudo") {
			t.Errorf("install as uid 501: %v", err)
		}
		if _, serr := os.Stat(p.StateDir); enrolled != 0 || len(lc.calls) != 0 || !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("install as uid 501 enrolled %d times, called launchctl %q, state directory %v: want nothing done", enrolled, lc.calls, serr)
		}
	})
	t.Run("enrolment refused", func(t *testing.T) {
		p := darwinTestPlan(t)
		lc := &fakeLaunchctl{loaded: map[string]bool{}}
		var enrolled int
		refused := errors.New("enroll: refused by the broker: token used up")
		err := install(context.Background(), &launchdSystem{launchctl: lc.run, euid: func() int { return 0 }}, p,
			enrolIn(p.StateDir, &enrolled, refused), &strings.Builder{})
		if !errors.Is(err, refused) {
			t.Errorf("install: %v, want the enrolment's error", err)
		}
		installtest.Gone(t, "a refused enrolment", p.StateDir, p.Launchd.PlistPath, p.Exe)
	})
	t.Run("bootstrap fails", func(t *testing.T) {
		p := darwinTestPlan(t)
		lc := &fakeLaunchctl{loaded: map[string]bool{}, fail: "bootstrap system " + p.Launchd.PlistPath}
		var enrolled int
		err := install(context.Background(), &launchdSystem{launchctl: lc.run, euid: func() int { return 0 }}, p,
			enrolIn(p.StateDir, &enrolled, nil), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "Bootstrap failed") || !strings.Contains(err.Error(), "stays enrolled") {
			t.Errorf("install: %v, want launchctl's reason and that the state stays enrolled", err)
		}
		installtest.Gone(t, "a failed bootstrap", p.Launchd.PlistPath)
		installtest.Kept(t, "a failed bootstrap", filepath.Join(p.StateDir, "agent.key"))
	})
}

// TestPurgeRefusesOtherDirectories: --purge removes only a directory that
// holds an agent.
func TestPurgeRefusesOtherDirectories(t *testing.T) {
	p := darwinTestPlan(t)
	os.MkdirAll(p.StateDir, 0o700)
	precious := filepath.Join(p.StateDir, "thesis.tex")
	os.WriteFile(precious, []byte("x"), 0o600)
	lc := &fakeLaunchctl{loaded: map[string]bool{}}
	err := uninstall(&launchdSystem{launchctl: lc.run, euid: func() int { return 0 }}, p, true, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "not a sessiond state directory") {
		t.Errorf("purge of a directory without an agent: %v", err)
	}
	installtest.Kept(t, "a purge of a directory that is no state directory", precious)
}
