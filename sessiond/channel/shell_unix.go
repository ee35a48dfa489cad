//go:build !windows

package channel

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"

	"github.com/readymesh/readymesh/peer/wire"
)

// defaultScriptShell runs queued jobs that name no shell.
const defaultScriptShell = wire.ShellSh

// shellPath finds a shell's program.
func shellPath(shell string) (string, error) {
	switch shell {
	case wire.ShellSh:
		return "/bin/sh", nil
	case wire.ShellPowerShell:
		p, err := exec.LookPath("pwsh")
		if err != nil {
			return "", errors.New("PowerShell (pwsh) is not installed on this machine")
		}
		return p, nil
	}
	return "", fmt.Errorf("%s is a Windows shell; this machine runs %s", shell, runtime.GOOS)
}

// setCmdLine does nothing on Unix, where argv is passed as it is.
func setCmdLine(*exec.Cmd, string) {}
