package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows"
)

func address(stateDir string) (string, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return "", fmt.Errorf("control pipe: %w", err)
	}
	return PipeName(abs), nil
}

func listen(stateDir string) (net.Listener, error) {
	name, err := address(stateDir)
	if err != nil {
		return nil, err
	}
	self, err := processSID()
	if err != nil {
		return nil, fmt.Errorf("control pipe: %w", err)
	}
	l, err := newPipeListener(name, PipeSDDL(self))
	if err != nil {
		return nil, fmt.Errorf("control pipe %s: %w", name, err)
	}
	return l, nil
}

// dialRetry is how often a dialler tries a pipe whose instances are all
// busy; the agent makes a new instance as soon as it accepts one.
const dialRetry = 10 * time.Millisecond

func dial(ctx context.Context, stateDir string) (net.Conn, error) {
	name, err := address(stateDir)
	if err != nil {
		return nil, err
	}
	h, err := openPipe(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := checkOwner(h, name); err != nil {
		windows.CloseHandle(h)
		return nil, err
	}
	return newPipeConn(h, name), nil
}

// openPipe opens the client end of the pipe name, waiting while every
// instance is busy. The server may only identify the caller, never act as
// it (SECURITY_IDENTIFICATION), whoever took the name.
func openPipe(ctx context.Context, name string) (windows.Handle, error) {
	name16, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return 0, err
	}
	for {
		h, err := windows.CreateFile(name16, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, nil,
			windows.OPEN_EXISTING, windows.FILE_FLAG_OVERLAPPED|windows.SECURITY_SQOS_PRESENT|windows.SECURITY_IDENTIFICATION, 0)
		switch {
		case err == nil:
			return h, nil
		case errors.Is(err, windows.ERROR_ACCESS_DENIED):
			return 0, &os.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w (only the agent's account, SYSTEM and Administrators may: run from an elevated prompt)", err)}
		case !errors.Is(err, windows.ERROR_PIPE_BUSY):
			return 0, &os.PathError{Op: "open", Path: name, Err: err}
		}
		select {
		case <-ctx.Done():
			return 0, &os.PathError{Op: "open", Path: name, Err: ctx.Err()}
		case <-time.After(dialRetry):
		}
	}
}

// checkOwner refuses a pipe that neither SYSTEM, Administrators nor this
// account owns (see TrustedOwner).
func checkOwner(h windows.Handle, name string) error {
	sd, err := windows.GetSecurityInfo(h, windows.SE_KERNEL_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("control pipe %s: reading its owner: %w", name, err)
	}
	owner, _, err := sd.Owner()
	if err != nil || owner == nil {
		return fmt.Errorf("control pipe %s: it has no owner", name)
	}
	self, err := processSID()
	if err != nil {
		return fmt.Errorf("control pipe %s: %w", name, err)
	}
	if !TrustedOwner(owner.String(), self) {
		return fmt.Errorf("control pipe %s is owned by %s, not by SYSTEM, Administrators or you: another program took its name; refusing to talk to it", name, owner)
	}
	return nil
}

// processSID is the SID of the account this process runs as.
func processSID() (string, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("reading this process's account: %w", err)
	}
	return u.User.Sid.String(), nil
}
