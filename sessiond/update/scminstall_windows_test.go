package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

// scmStopWaitHint is the wait hint the service reports with stop-pending
// (sessiond/service, stopWait): the SCM's bound on a stop.
const scmStopWaitHint = 30 * time.Second

// writeStamped writes a copy of src stamped with version to dst.
func writeStamped(t *testing.T, src, dst, version string) {
	t.Helper()
	if err := copyFile(src, dst); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(stampPrefix + version + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// scmInstall is an installed agent registered as a service: EXE holds
// the test binary stamped as the old version, and the stand-in agent
// holds a release of the test binary stamped as the new one.
type scmInstall struct {
	state  string
	p      Paths
	oldSum string
	newSum string
	name   string
	m      *mgr.Mgr
	s      *mgr.Service
}

func newSCMInstall(t *testing.T, part string) *scmInstall {
	t.Helper()
	dir := testdir.New(t)
	in := &scmInstall{state: filepath.Join(dir, "state"), p: PathsFor(filepath.Join(dir, "sessiond"+exeSuffix))}
	if err := os.MkdirAll(in.state, 0o700); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	writeStamped(t, self, in.p.Exe, scmOldVersion)
	blob := filepath.Join(in.state, blobFile)
	writeStamped(t, self, blob, scmNewVersion)
	in.oldSum, _ = fileSum(t, in.p.Exe)
	var size int64
	in.newSum, size = fileSum(t, blob)
	if err := writeJSON(filepath.Join(in.state, orderFile), wire.ReleaseBinary{SHA256: in.newSum, Size: size}); err != nil {
		t.Fatal(err)
	}
	in.setPart(t, part)

	if in.m, err = mgr.Connect(); err != nil {
		t.Fatalf("connecting to the service manager: %v", err)
	}
	in.name = fmt.Sprintf("readymesh-update-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	in.s, err = in.m.CreateService(in.name, in.p.Exe, mgr.Config{ServiceType: windows.SERVICE_WIN32_OWN_PROCESS,
		StartType: mgr.StartManual, ErrorControl: mgr.ErrorNormal, DisplayName: "readymesh update test service"},
		"-test.run=^TestSCMAgentProcess$", "--", in.state)
	if err != nil {
		in.m.Disconnect()
		t.Fatalf("CreateService: %v", err)
	}
	t.Cleanup(func() { in.remove(t) })
	return in
}

// remove stops and deletes the service and ends whatever process of the
// test still runs (none, unless the test failed), so the directory can
// go.
func (in *scmInstall) remove(t *testing.T) {
	if st, err := in.s.Query(); err == nil && st.State != svc.Stopped {
		in.s.Control(svc.Stop)
		waitSCM(in.s, svc.Stopped, time.Minute)
	}
	for _, e := range in.events(t) {
		if in.running(e.PID) {
			t.Errorf("%s process %d still runs at the end; killing it", e.Who, e.PID)
			in.kill(e.PID)
		}
	}
	if t.Failed() {
		in.dump(t)
	}
	if err := in.s.Delete(); err != nil {
		t.Errorf("deleting the test service %s: %v", in.name, err)
	}
	in.s.Close()
	in.m.Disconnect()
}

// setPart picks what the children started from now on do.
func (in *scmInstall) setPart(t *testing.T, part string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(in.state, childPartFile), []byte(part), 0o600); err != nil {
		t.Fatal(err)
	}
}

// events reads events.log.
func (in *scmInstall) events(t *testing.T) []scmEvent {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(in.state, eventsFile))
	var evs []scmEvent
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e scmEvent
		if line != "" && json.Unmarshal([]byte(line), &e) == nil {
			evs = append(evs, e)
		}
	}
	return evs
}

// find returns the events of who (any PID when pid is 0) whose What
// starts with what.
func (in *scmInstall) find(t *testing.T, who string, pid uint32, what string) []scmEvent {
	var out []scmEvent
	for _, e := range in.events(t) {
		if e.Who == who && (pid == 0 || e.PID == pid) && strings.HasPrefix(e.What, what) {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits up to limit for the n-th event find returns.
func (in *scmInstall) waitEvent(t *testing.T, limit time.Duration, n int, who string, pid uint32, what string) scmEvent {
	t.Helper()
	waitFor(t, limit, fmt.Sprintf("%s event %d %q", who, n, what), func() bool { return len(in.find(t, who, pid, what)) >= n })
	return in.find(t, who, pid, what)[n-1]
}

// dump logs what the processes recorded, for a failed test.
func (in *scmInstall) dump(t *testing.T) {
	b, _ := os.ReadFile(filepath.Join(in.state, eventsFile))
	t.Logf("events:\n%s", b)
	b, _ = os.ReadFile(filepath.Join(in.state, watchdogLog))
	t.Logf("service log:\n%s", b)
}

// start starts the service through the SCM and returns the PID of the
// process the SCM started, once it has said which version it is.
func (in *scmInstall) start(t *testing.T, version string) uint32 {
	t.Helper()
	if err := in.s.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	st, err := waitSCM(in.s, svc.Running, time.Minute)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if st.ProcessId == 0 {
		t.Fatal("the SCM does not say which process runs the service")
	}
	e := in.waitEvent(t, time.Minute, 1, "service", st.ProcessId, "started")
	if e.Version != version {
		t.Fatalf("the SCM started %s (process %d), want %s", e.Version, e.PID, version)
	}
	return st.ProcessId
}

// stop sends the SCM's Stop and waits for stopped; it returns how long
// that took, and checks that it was within the wait hint and a clean stop
// (exit code 0) and that the service's process is gone.
func (in *scmInstall) stop(t *testing.T, pid uint32) time.Duration {
	t.Helper()
	begin := time.Now()
	if _, err := in.s.Control(svc.Stop); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// The wait hint as the SCM holds it: mgr's Query leaves it out.
	var hint time.Duration
	var st windows.SERVICE_STATUS_PROCESS
	for {
		var err error
		if st, err = queryStatus(in.s); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if st.CurrentState == windows.SERVICE_STOP_PENDING {
			hint = max(hint, time.Duration(st.WaitHint)*time.Millisecond)
		}
		if st.CurrentState == windows.SERVICE_STOPPED || time.Since(begin) > 2*scmStopWaitHint {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(begin)
	if st.CurrentState != windows.SERVICE_STOPPED {
		t.Fatalf("the service is still in state %d %s after Stop", st.CurrentState, took)
	}
	from := "as the service reported it with stop-pending"
	switch {
	case hint == 0:
		from = "the service's own: stop-pending passed between two queries"
		// Stop-pending came and went between two queries 10 ms apart:
		// the service's own hint is the bound.
		hint = scmStopWaitHint
	case hint != scmStopWaitHint:
		t.Errorf("the service reported stop-pending with a wait hint of %s, want %s", hint, scmStopWaitHint)
	}
	if took >= hint {
		t.Errorf("the service stopped %s after Stop, beyond its wait hint of %s", took.Round(time.Millisecond), hint)
	}
	if st.Win32ExitCode != 0 || st.ServiceSpecificExitCode != 0 {
		t.Errorf("the service stopped with exit code %d, service-specific %d; want a clean stop", st.Win32ExitCode, st.ServiceSpecificExitCode)
	}
	if r := in.waitEvent(t, time.Minute, 1, "service", pid, "returned"); r.What != "returned: <nil>" {
		t.Errorf("service.Run %s, want nil", r.What)
	}
	waitFor(t, time.Minute, "the service's process to exit", func() bool { return !in.running(pid) })
	t.Logf("Stop to stopped: %s (wait hint %s, %s)", took.Round(time.Millisecond), hint, from)
	return took
}

// checkStoppedChild checks that child is not running and, unless it was
// killed, that it stopped because its stdin ended.
func (in *scmInstall) checkStoppedChild(t *testing.T, child scmEvent, killed bool) {
	t.Helper()
	if in.running(child.PID) {
		t.Errorf("the child %d (%s) outlived its watchdog", child.PID, child.Version)
	}
	clean := len(in.find(t, "child", child.PID, "stdin ended")) == 1
	if !killed && !clean {
		t.Errorf("the child %d did not stop through its stdin", child.PID)
	}
	if killed && clean {
		t.Errorf("the child %d stopped by itself; this test wants one that is killed", child.PID)
	}
}

// checkLockFree checks that no process holds the update lock.
func (in *scmInstall) checkLockFree(t *testing.T) {
	t.Helper()
	l, err := TakeLock(in.state, 0)
	if err != nil {
		t.Errorf("the update lock is still held after the service stopped: %v", err)
		return
	}
	l.Release()
}

// checkInterrupted checks the state a stop during the trial leaves:
// the trial to resume with its start given back, EXE the old binary,
// EXE.new the new one, no outcome and no healthy marker.
func (in *scmInstall) checkInterrupted(t *testing.T) {
	t.Helper()
	tr, err := LoadTrial(in.state)
	if err != nil || tr == nil {
		t.Fatalf("no trial state after the stop: %v", err)
	}
	if tr.Starts != 0 || tr.Phase != PhaseTrial || tr.LastExit != "was stopped with its watchdog" || tr.From != scmOldVersion || tr.To != scmNewVersion {
		t.Errorf("trial state after the stop %+v: want phase trial, the start given back", tr)
	}
	if !sameFile(tr.Exe, in.p.Exe) {
		t.Errorf("the trial replaces %s, want the service's executable %s", tr.Exe, in.p.Exe)
	}
	in.checkSum(t, in.p.Exe, in.oldSum, "EXE")
	in.checkSum(t, in.p.New, in.newSum, "EXE.new")
	if o, err := LoadOutcome(in.state); o != nil || err != nil {
		t.Errorf("an outcome after a stop during the trial: %+v, %v", o, err)
	}
	if _, err := os.Stat(filepath.Join(Dir(in.state), HealthyFile)); !os.IsNotExist(err) {
		t.Errorf("healthy marker: %v", err)
	}
}

// checkImagePath checks that the service still runs EXE: the SCM's
// configuration is never changed by an update.
func (in *scmInstall) checkImagePath(t *testing.T) {
	t.Helper()
	// QueryServiceConfig itself: mgr's Config also asks for the delayed
	// start, which Wine 8's SCM does not answer ("Invalid level").
	var need uint32
	windows.QueryServiceConfig(in.s.Handle, nil, 0, &need)
	buf := make([]byte, need)
	c := (*windows.QUERY_SERVICE_CONFIG)(unsafe.Pointer(&buf[0]))
	if err := windows.QueryServiceConfig(in.s.Handle, c, need, &need); err != nil {
		t.Fatalf("QueryServiceConfig: %v", err)
	}
	image := windows.UTF16PtrToString(c.BinaryPathName)
	if !strings.HasPrefix(image, syscall.EscapeArg(in.p.Exe)+" ") {
		t.Errorf("the service runs %q, want %s", image, in.p.Exe)
	}
}

func (in *scmInstall) checkSum(t *testing.T, path, want, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if sum, _ := fileSum(t, path); sum != want {
		t.Errorf("%s is not the binary it should be", what)
	}
}

// stopDuringTrial starts the service until its trial is under way, has
// the SCM stop it, and checks what a stop during a trial leaves: the
// child gone (killed after its grace if it ignored the stop), the lock
// free, the trial left to resume. It returns how long the stop took.
func (in *scmInstall) stopDuringTrial(t *testing.T, killed bool) time.Duration {
	t.Helper()
	pid, child := in.trialUnderWay(t)
	took := in.stop(t, pid)
	in.checkStoppedChild(t, child, killed)
	in.checkLockFree(t)
	in.checkInterrupted(t)
	return took
}

// trialUnderWay starts the service, which stages the release and starts
// it on trial, and returns the service's PID and the child's start event.
func (in *scmInstall) trialUnderWay(t *testing.T) (uint32, scmEvent) {
	t.Helper()
	pid := in.start(t, scmOldVersion)
	in.checkImagePath(t)
	child := in.waitEvent(t, time.Minute, 1, "child", 0, "started")
	if child.Version != scmNewVersion || child.Start != 1 {
		t.Fatalf("the first child is %s at start %d, want %s at start 1", child.Version, child.Start, scmNewVersion)
	}
	if len(in.find(t, "service", pid, "staged")) != 1 {
		t.Fatal("the child started without the agent staging the release")
	}
	// The processes are seen running from here, by their programs: the
	// checks that none outlives a stop can tell.
	for _, p := range []uint32{pid, child.PID} {
		if h, mine := in.open(p, 0); mine != ours {
			t.Fatalf("process %d runs (%d) but is not seen as a program of %s", p, mine, filepath.Dir(in.p.Exe))
		} else {
			windows.CloseHandle(h)
		}
	}
	// The lock another process holds is seen from here: checkLockFree
	// can tell.
	if l, err := TakeLock(in.state, 0); !errors.Is(err, ErrLocked) {
		if err == nil {
			l.Release()
		}
		t.Errorf("the update lock while the service runs: %v, want ErrLocked", err)
	}
	return pid, child
}

// queryStatus is the service's status as the SCM holds it.
func queryStatus(s *mgr.Service) (windows.SERVICE_STATUS_PROCESS, error) {
	var st windows.SERVICE_STATUS_PROCESS
	var need uint32
	err := windows.QueryServiceStatusEx(s.Handle, windows.SC_STATUS_PROCESS_INFO, (*byte)(unsafe.Pointer(&st)), uint32(unsafe.Sizeof(st)), &need)
	return st, err
}

// waitSCM waits up to limit for s to reach want.
func waitSCM(s *mgr.Service, want svc.State, limit time.Duration) (svc.Status, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := s.Query()
		if err != nil {
			return st, err
		}
		if st.State == want {
			return st, nil
		}
		if want == svc.Running && st.State == svc.Stopped {
			return st, fmt.Errorf("the service stopped (exit code %d, service-specific %d)", st.Win32ExitCode, st.ServiceSpecificExitCode)
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("still in state %d after %s", st.State, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running reports whether process pid runs a program of the install's
// directory (or one whose image the system does not name): a PID the
// system gave to another process since is not one of the test's.
func (in *scmInstall) running(pid uint32) bool {
	h, mine := in.open(pid, 0)
	if h != 0 {
		windows.CloseHandle(h)
	}
	return mine != notOurs
}

// kill ends process pid if it surely is one of the test's.
func (in *scmInstall) kill(pid uint32) {
	h, mine := in.open(pid, windows.PROCESS_TERMINATE)
	if h == 0 {
		return
	}
	if mine == ours {
		windows.TerminateProcess(h, 1)
	}
	windows.CloseHandle(h)
}

// Whose a running process is.
const (
	notOurs = iota // gone, or another program's
	ours           // runs a program of the install's directory
	unnamed        // runs, but the system does not say which program
)

// open opens process pid with access, if it runs, and says whose it is.
func (in *scmInstall) open(pid, access uint32) (windows.Handle, int) {
	h, err := windows.OpenProcess(access|windows.SYNCHRONIZE|windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return 0, notOurs // gone (ERROR_INVALID_PARAMETER)
	}
	if ev, err := windows.WaitForSingleObject(h, 0); err != nil || ev != uint32(windows.WAIT_TIMEOUT) {
		windows.CloseHandle(h)
		return 0, notOurs
	}
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &n); err != nil {
		return h, unnamed
	}
	dir := filepath.Dir(in.p.Exe) + string(filepath.Separator)
	if image := windows.UTF16ToString(buf[:n]); len(image) > len(dir) && strings.EqualFold(image[:len(dir)], dir) {
		return h, ours
	}
	windows.CloseHandle(h)
	return 0, notOurs
}

// sameFile reports whether a and b name one file.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return errors.Join(err1, err2) == nil && os.SameFile(fa, fb)
}
