package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc/mgr"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/sessiond/internal/wintest"
)

// TestServiceProcess is the service TestSCMStartStop registers: the SCM
// runs this test binary with -test.run=^TestServiceProcess$ -- LOG [fail],
// and it runs a stand-in agent through Run, noting in LOG what happened.
func TestServiceProcess(t *testing.T) {
	logPath := flag.Arg(0)
	if logPath == "" {
		t.Skip("only the Service Control Manager runs this, as the service TestSCMStartStop starts")
	}
	note := func(s string) {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err == nil {
			fmt.Fprintln(f, s)
			f.Close()
		}
	}
	err := Run(context.Background(), func(ctx context.Context) error {
		note("running")
		if flag.Arg(1) == "fail" {
			return errors.New("broken on purpose")
		}
		<-ctx.Done()
		note(fmt.Sprintf("stopped cleanly (%v)", context.Cause(ctx)))
		return nil
	})
	note(fmt.Sprintf("Run returned %v", err))
}

// testService registers the test binary as a service running
// TestServiceProcess with args, and removes it when the test ends.
func testService(t *testing.T, args ...string) (name string, p *Plan) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name = fmt.Sprintf("readymesh-sessiond-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	p = &Plan{OS: "windows", Exe: exe, Args: append([]string{"-test.run=^TestServiceProcess$", "--"}, args...),
		Windows: &WindowsService{Name: name, DisplayName: "readymesh test service", Description: "made by sessiond/service tests",
			Recovery: []time.Duration{5 * time.Second, 30 * time.Second, time.Minute}, ResetPeriod: 24 * time.Hour, RecoverOnError: true}}
	if err := (winSCM{}).create(p); err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	t.Cleanup(func() {
		(winSCM{}).stop(name)
		if err := (winSCM{}).delete(name); err != nil {
			t.Errorf("deleting test service %s: %v", name, err)
		}
	})
	return name, p
}

// waitLog waits up to 10 s for the service's log to hold want.
func waitLog(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, _ := os.ReadFile(path)
		if strings.Contains(string(raw), want) || time.Now().After(deadline) {
			return string(raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSCMStartStop: the SCM stores the command line CommandLine shows,
// LocalSystem and automatic start; it starts the service, which Run
// reports running; Stop cancels the agent's context with ErrStopRequested,
// and it ends cleanly; delete unregisters it.
func TestSCMStartStop(t *testing.T) {
	logPath := filepath.Join(testdir.New(t), "service.log")
	name, p := testService(t, logPath)
	if ok, err := (winSCM{}).exists(name); !ok || err != nil {
		t.Fatalf("exists after create: %v, %v", ok, err)
	}
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SYSTEM\CurrentControlSet\Services\`+name, registry.QUERY_VALUE)
	if err != nil {
		t.Fatal(err)
	}
	image, _, err1 := k.GetStringValue("ImagePath")
	start, _, err2 := k.GetIntegerValue("Start")
	account, _, err3 := k.GetStringValue("ObjectName")
	k.Close()
	if want := CommandLine(p.Exe, p.Args); image != want || err1 != nil {
		t.Errorf("registered command line %q (%v), want %q", image, err1, want)
	}
	if start != windows.SERVICE_AUTO_START || err2 != nil || account != "LocalSystem" || err3 != nil {
		t.Errorf("start type %d (%v), account %q (%v): want automatic start as LocalSystem", start, err2, account, err3)
	}

	if err := (winSCM{}).start(name); err != nil {
		t.Fatalf("start: %v (service log: %q)", err, waitLog(t, logPath, ""))
	}
	if got := waitLog(t, logPath, "running"); !strings.Contains(got, "running") {
		t.Fatalf("the service did not run the agent: log %q", got)
	}
	if err := (winSCM{}).stop(name); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := waitLog(t, logPath, "Run returned"); !strings.Contains(got, "stopped cleanly ("+ErrStopRequested.Error()+")\nRun returned <nil>") {
		t.Errorf("after Stop the log reads %q, want a clean stop and Run returning nil", got)
	}
	if err := (winSCM{}).stop(name); err != nil {
		t.Errorf("stopping a stopped service: %v, want nil", err)
	}
}

// TestSCMAgentFails: an agent that fails stops the service with the
// service-specific exit code 1, which start reports.
func TestSCMAgentFails(t *testing.T) {
	logPath := filepath.Join(testdir.New(t), "service.log")
	name, _ := testService(t, logPath, "fail")
	err := (winSCM{}).start(name)
	if err == nil || !strings.Contains(err.Error(), "service-specific 1") {
		t.Errorf("start of a failing agent: %v, want it to say it stopped with service-specific exit code 1", err)
	}
	if got := waitLog(t, logPath, "Run returned"); !strings.Contains(got, "Run returned broken on purpose") {
		t.Errorf("log %q, want Run to return the agent's error", got)
	}
}

// TestSCMRecovery: the recovery actions read back as set.
func TestSCMRecovery(t *testing.T) {
	name, p := testService(t, "unused")
	err := (winSCM{}).setRecovery(p.Windows)
	if errors.Is(err, windows.ERROR_INVALID_LEVEL) && wintest.UnderWine() {
		t.Skipf("Wine 8's SCM implements neither SERVICE_CONFIG_FAILURE_ACTIONS_FLAG (ChangeServiceConfig2: %v) reading back SERVICE_CONFIG_FAILURE_ACTIONS (which it accepts), so the recovery actions are only checked by TestWindowsPlan and TestWindowsInstall", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := mgr.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	actions, err1 := s.RecoveryActions()
	reset, err2 := s.ResetPeriod()
	onError, err3 := s.RecoveryActionsOnNonCrashFailures()
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	var delays []time.Duration
	for _, a := range actions {
		if a.Type != mgr.ServiceRestart {
			t.Errorf("action %+v is not a restart", a)
		}
		delays = append(delays, a.Delay)
	}
	if !slices.Equal(delays, p.Windows.Recovery) || reset != 86400 || !onError {
		t.Errorf("recovery: restarts after %v, reset after %d s, on error exits %v; want %v, 86400, true", delays, reset, onError, p.Windows.Recovery)
	}
}

// TestSecureDir: the state directory ends up owned by Administrators,
// open to SYSTEM and Administrators only, with inheritance from above cut.
func TestSecureDir(t *testing.T) {
	dir := filepath.Join(testdir.New(t), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := secureDir(dir, StateSDDL); err != nil {
		t.Fatalf("secureDir: %v", err)
	}
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatal(err)
	}
	owner, _, _ := sd.Owner()
	sids, protected := wintest.AllowedSIDs(t, sd)
	ok := owner != nil && owner.String() == "S-1-5-32-544" && protected && slices.Equal(sids, []string{"S-1-5-18", "S-1-5-32-544"})
	if !ok && wintest.UnderWine() {
		t.Skipf("Wine 8 accepts SetNamedSecurityInfo but reads back %s: it keeps no DACL of its own on files (it derives one from the Unix mode), so the ACL is only checked as SDDL (TestWindowsPlan)", sd)
	}
	if !ok {
		t.Errorf("state directory security %s: want owner Administrators, a protected DACL admitting S-1-5-18 and S-1-5-32-544 only", sd)
	}
}
