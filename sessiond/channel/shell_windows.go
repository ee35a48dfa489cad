package channel

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/readymesh/readymesh/peer/wire"
)

// defaultScriptShell runs queued jobs that name no shell.
const defaultScriptShell = wire.ShellPowerShell

// shellPath finds a shell's program: the system's own copies of Windows
// PowerShell and cmd (never a same-named program earlier in PATH, as the
// agent runs as LocalSystem), PowerShell 7 (pwsh) where Windows PowerShell
// is missing, and sh from PATH (Git for Windows, MSYS2).
func shellPath(shell string) (string, error) {
	sys := filepath.Join(systemRoot(), "System32")
	switch shell {
	case wire.ShellPowerShell:
		p := filepath.Join(sys, `WindowsPowerShell\v1.0\powershell.exe`)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if p, err := exec.LookPath("pwsh.exe"); err == nil {
			return p, nil
		}
		return "", errors.New("PowerShell is not installed on this machine (neither powershell.exe nor pwsh.exe): use --shell cmd")
	case wire.ShellCmd:
		p := filepath.Join(sys, "cmd.exe")
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("cmd.exe: %w", err)
		}
		return p, nil
	case wire.ShellSh:
		p, err := exec.LookPath("sh.exe")
		if err != nil {
			return "", errors.New("no sh.exe on this machine's PATH (Git for Windows or MSYS2 provide one)")
		}
		return p, nil
	}
	return "", fmt.Errorf("unknown shell %q", shell)
}

// systemRoot is the Windows directory.
func systemRoot() string {
	if r := os.Getenv("SystemRoot"); r != "" {
		return r
	}
	return `C:\Windows`
}

// setCmdLine gives cmd the exact command line, when there is one.
func setCmdLine(cmd *exec.Cmd, line string) {
	if line == "" {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = new(syscall.SysProcAttr)
	}
	cmd.SysProcAttr.CmdLine = line
}
