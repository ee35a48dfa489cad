package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
)

// fakeSCM is the Service Control Manager as install sees it: it records
// each call, and fails those named in fail.
type fakeSCM struct {
	calls      []string
	registered map[string]bool
	fail       string // calls that fail, separated by blanks
}

func (f *fakeSCM) call(c, name string) error {
	f.calls = append(f.calls, c+" "+name)
	if slices.Contains(strings.Fields(f.fail), c) {
		return errors.New(c + ": Access is denied.")
	}
	return nil
}

func (f *fakeSCM) exists(name string) (bool, error) {
	return f.registered[name], f.call("exists", name)
}

func (f *fakeSCM) create(p *Plan) error {
	if err := f.call("create", p.Windows.Name); err != nil {
		return err
	}
	f.registered[p.Windows.Name] = true
	return nil
}

func (f *fakeSCM) setRecovery(ws *WindowsService) error { return f.call("setRecovery", ws.Name) }
func (f *fakeSCM) start(name string) error              { return f.call("start", name) }
func (f *fakeSCM) stop(name string) error               { return f.call("stop", name) }

func (f *fakeSCM) delete(name string) error {
	if err := f.call("delete", name); err != nil {
		return err
	}
	delete(f.registered, name)
	return nil
}

// windowsTestPlan is a Windows plan whose files live in a temporary
// directory of this system.
func windowsTestPlan(t *testing.T) *Plan {
	t.Helper()
	root := testdir.New(t)
	src := filepath.Join(root, "sessiond.exe")
	if err := os.WriteFile(src, []byte("MZ"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(Spec{OS: "windows", StateDir: winState, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	p.StateDir = filepath.Join(root, "ProgramData", "readymesh", "sessiond")
	p.Exe = filepath.Join(root, "Program Files", "readymesh", "sessiond.exe")
	p.LogFile = filepath.Join(p.StateDir, "sessiond.log")
	p.Windows.SecureDirs = []string{filepath.Dir(p.StateDir), p.StateDir}
	return p
}

// windowsTest is a windowsSystem over a fakeSCM that records the
// directories it secures.
func windowsTest(scm *fakeSCM, secured *[]string, elevated bool) *windowsSystem {
	return &windowsSystem{scm: scm, isElevated: func() bool { return elevated },
		secureDir: func(dir, sddl string) error {
			*secured = append(*secured, dir+" "+sddl)
			return nil
		}}
}

// TestWindowsInstall: the state directory is secured before the agent
// enrols into it, then the service is created, given its recovery actions
// and started; uninstall stops and deletes it.
func TestWindowsInstall(t *testing.T) {
	p := windowsTestPlan(t)
	scm := &fakeSCM{registered: map[string]bool{}}
	var secured []string
	var enrolled int
	enrol := func(ctx context.Context) error {
		if len(secured) != 2 {
			t.Errorf("enrolling into a state directory secured %d times, want 2 (parent, state)", len(secured))
		}
		return enrolIn(p.StateDir, &enrolled, nil)(ctx)
	}
	if err := install(context.Background(), windowsTest(scm, &secured, true), p, enrol, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Dir(p.StateDir) + " " + StateSDDL, p.StateDir + " " + StateSDDL}; !slices.Equal(secured, want) {
		t.Errorf("secured %q, want %q", secured, want)
	}
	if want := []string{"exists readymesh-sessiond", "create readymesh-sessiond", "setRecovery readymesh-sessiond", "start readymesh-sessiond"}; !slices.Equal(scm.calls, want) {
		t.Errorf("SCM calls %q, want %q", scm.calls, want)
	}
	if raw, err := os.ReadFile(p.Exe); err != nil || string(raw) != "MZ" {
		t.Errorf("installed binary %q, %v", raw, err)
	}

	scm.calls = nil
	if err := uninstall(windowsTest(scm, &secured, true), p, false, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"exists readymesh-sessiond", "stop readymesh-sessiond", "delete readymesh-sessiond"}; !slices.Equal(scm.calls, want) {
		t.Errorf("uninstall's SCM calls %q, want %q", scm.calls, want)
	}
}

// TestUninstallDeletesWhenStopFails: a service that will not stop (it is
// starting, or slow) is still marked for deletion, and the stop's error
// is reported.
func TestUninstallDeletesWhenStopFails(t *testing.T) {
	p := windowsTestPlan(t)
	scm := &fakeSCM{registered: map[string]bool{p.Windows.Name: true}, fail: "stop"}
	var secured []string
	err := uninstall(windowsTest(scm, &secured, true), p, false, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "stop") {
		t.Errorf("uninstall with a failing stop: %v, want the stop's error", err)
	}
	if !slices.Contains(scm.calls, "delete "+p.Windows.Name) || scm.registered[p.Windows.Name] {
		t.Errorf("SCM calls %q: the service was not deleted", scm.calls)
	}
}

// TestWindowsInstallFailures: a service that could not get its recovery
// actions, or could not start, is deleted again, and a delete that fails
// is reported; without administrator rights nothing happens.
func TestWindowsInstallFailures(t *testing.T) {
	for _, tc := range []struct {
		fail       string
		elevated   bool
		calls      []string
		err        string
		registered bool // the service stays registered
	}{
		{fail: "setRecovery", elevated: true, err: "setting the recovery actions of readymesh-sessiond",
			calls: []string{"exists readymesh-sessiond", "create readymesh-sessiond", "setRecovery readymesh-sessiond", "delete readymesh-sessiond"}},
		{fail: "setRecovery delete", elevated: true, registered: true,
			err:   "setting the recovery actions of readymesh-sessiond: setRecovery: Access is denied.; deleting service readymesh-sessiond again failed too (delete: Access is denied.): run sessiond uninstall",
			calls: []string{"exists readymesh-sessiond", "create readymesh-sessiond", "setRecovery readymesh-sessiond", "delete readymesh-sessiond"}},
		{fail: "start", elevated: true, err: "the service was removed again",
			calls: []string{"exists readymesh-sessiond", "create readymesh-sessiond", "setRecovery readymesh-sessiond", "start readymesh-sessiond",
				"stop readymesh-sessiond", "delete readymesh-sessiond"}},
		{elevated: false, err: "needs administrator rights: run it from an elevated prompt"},
	} {
		p := windowsTestPlan(t)
		scm := &fakeSCM{registered: map[string]bool{}, fail: tc.fail}
		var secured []string
		var enrolled int
		err := install(context.Background(), windowsTest(scm, &secured, tc.elevated), p, enrolIn(p.StateDir, &enrolled, nil), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s failing: %v, want %q", tc.fail, err, tc.err)
		}
		if !slices.Equal(scm.calls, tc.calls) {
			t.Errorf("%s failing: SCM calls %q, want %q", tc.fail, scm.calls, tc.calls)
		}
		if scm.registered[WindowsName] != tc.registered {
			t.Errorf("%s failing: the service registered %v, want %v", tc.fail, scm.registered[WindowsName], tc.registered)
		}
		if !tc.elevated && (enrolled != 0 || len(secured) != 0) {
			t.Errorf("unelevated install enrolled %d times and secured %q", enrolled, secured)
		}
	}
}
