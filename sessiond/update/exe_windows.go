package update

import (
	"os/exec"
	"syscall"

	"golang.org/x/sys/windows"
)

// exeSuffix is the executable's file name suffix.
const exeSuffix = ".exe"

// detach starts the child without a console. Console control events
// (a user's logoff, which Go turns into SIGTERM) then never reach it:
// its stop signal is the end of its stdin, which the watchdog, itself
// stopped by the service manager, closes.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: windows.DETACHED_PROCESS}
}

// syncDir is nothing on Windows: NTFS journals renames.
func syncDir(string) error { return nil }
