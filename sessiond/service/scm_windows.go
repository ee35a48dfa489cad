package service

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

func newSystem() (system, error) {
	return &windowsSystem{scm: winSCM{}, secureDir: secureDir, isElevated: isElevated}, nil
}

// isElevated reports whether this process holds an elevated token.
func isElevated() bool { return windows.GetCurrentProcessToken().IsElevated() }

// secureDir sets the owner and the protected DACL of sddl on dir; the
// DACL's inheritable entries reach what dir holds.
func secureDir(dir, sddl string) error {
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return err
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	return windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION,
		owner, nil, dacl, nil)
}

// winSCM is the real Service Control Manager.
type winSCM struct{}

var _ scm = winSCM{}

// pollEvery and stateWait bound the waits for a service to start or
// stop. settle is how long a started service is watched: the agent
// reports running before it opens its state, so an agent that cannot
// (not enrolled, its database held by another) stops within it.
const (
	pollEvery = 200 * time.Millisecond
	stateWait = 30 * time.Second
	settle    = 3 * time.Second
)

// open opens the service name and calls f with it.
func (winSCM) open(name string, f func(*mgr.Service) error) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connecting to the service manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return err
	}
	defer s.Close()
	return f(s)
}

func (w winSCM) exists(name string) (bool, error) {
	err := w.open(name, func(*mgr.Service) error { return nil })
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return false, nil
	}
	return err == nil, err
}

func (winSCM) create(p *Plan) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connecting to the service manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.CreateService(p.Windows.Name, p.Exe, mgr.Config{
		ServiceType:  windows.SERVICE_WIN32_OWN_PROCESS,
		StartType:    mgr.StartAutomatic,
		ErrorControl: mgr.ErrorNormal,
		DisplayName:  p.Windows.DisplayName,
		Description:  p.Windows.Description,
		// An empty ServiceStartName is LocalSystem.
	}, p.Args...)
	if err != nil {
		return err
	}
	return s.Close()
}

func (w winSCM) setRecovery(ws *WindowsService) error {
	return w.open(ws.Name, func(s *mgr.Service) error {
		actions := make([]mgr.RecoveryAction, len(ws.Recovery))
		for i, d := range ws.Recovery {
			actions[i] = mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d}
		}
		if err := s.SetRecoveryActions(actions, uint32(ws.ResetPeriod/time.Second)); err != nil {
			return err
		}
		return s.SetRecoveryActionsOnNonCrashFailures(ws.RecoverOnError)
	})
}

func (w winSCM) start(name string) error {
	return w.open(name, func(s *mgr.Service) error {
		if err := s.Start(); err != nil {
			return err
		}
		if err := waitState(s, svc.Running); err != nil {
			return err
		}
		return stillRunning(s, settle)
	})
}

func (w winSCM) stop(name string) error {
	return w.open(name, func(s *mgr.Service) error {
		if _, err := s.Control(svc.Stop); err != nil {
			if errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
				return nil
			}
			return err
		}
		return waitState(s, svc.Stopped)
	})
}

func (w winSCM) delete(name string) error {
	return w.open(name, func(s *mgr.Service) error { return s.Delete() })
}

// stillRunning watches s for d and fails if it stops meanwhile.
func stillRunning(s *mgr.Service, d time.Duration) error {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(pollEvery) {
		st, err := s.Query()
		if err != nil {
			return err
		}
		if st.State == svc.Stopped || st.State == svc.StopPending {
			return stoppedError(s)
		}
	}
	return nil
}

// stoppedError says that s stopped at once, with its exit code once it
// has stopped.
func stoppedError(s *mgr.Service) error {
	if err := waitState(s, svc.Stopped); err != nil {
		return fmt.Errorf("it is stopping at once: %w", err)
	}
	st, err := s.Query()
	if err != nil {
		return err
	}
	return fmt.Errorf("it stopped at once (exit code %d, service-specific %d)", st.Win32ExitCode, st.ServiceSpecificExitCode)
}

// waitState waits up to stateWait for s to reach want. A service that
// stops while it should start says with which exit code.
func waitState(s *mgr.Service, want svc.State) error {
	deadline := time.Now().Add(stateWait)
	for {
		st, err := s.Query()
		if err != nil {
			return err
		}
		switch {
		case st.State == want:
			return nil
		case want == svc.Running && st.State == svc.Stopped:
			return stoppedError(s)
		case time.Now().After(deadline):
			return fmt.Errorf("still in state %d after %s", st.State, stateWait)
		}
		time.Sleep(pollEvery)
	}
}
