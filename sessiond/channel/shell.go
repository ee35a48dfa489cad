package channel

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// A launch is how to start a program: its argv, and on Windows the exact
// command line when the program parses it by rules of its own (cmd.exe),
// which Go's argument quoting would break.
type launch struct {
	argv    []string
	cmdLine string // Windows only; empty: built from argv
}

// command makes the exec.Cmd for l.
func (l launch) command() *exec.Cmd {
	cmd := exec.Command(l.argv[0], l.argv[1:]...)
	setCmdLine(cmd, l.cmdLine)
	return cmd
}

// powerShellFlags start PowerShell for one command or script with no
// profile, no prompt, and the execution policy bypassed for that process
// only (-ExecutionPolicy sets the Process scope; nothing is stored).
var powerShellFlags = []string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass"}

// shellLine is how shell runs line, a command line a technician typed
// (exec --shell).
func shellLine(shell, line string) (launch, error) {
	prog, err := shellPath(shell)
	if err != nil {
		return launch{}, err
	}
	switch shell {
	case wire.ShellPowerShell:
		return launch{argv: append(append([]string{prog}, powerShellFlags...), "-Command", line)}, nil
	case wire.ShellCmd:
		return cmdLaunch(prog, line), nil
	}
	return launch{argv: []string{prog, "-c", line}}, nil
}

// cmdLaunch runs line with cmd.exe: /d skips AutoRun commands, /s /c
// strips the outer quotes and runs the rest exactly as given.
func cmdLaunch(prog, line string) launch {
	return launch{argv: []string{prog, "/d", "/s", "/c", line},
		cmdLine: `"` + prog + `" /d /s /c "` + line + `"`}
}

// script is a queued job's script made ready to run: how, and the file
// it was written to (removed after the run) when the shell reads a file.
type script struct {
	launch
	file string
}

// scriptFor prepares body to run with shell (the platform's default when
// empty) as id. PowerShell and cmd read scripts from files: the script is
// written, as id, to a new file in id's temporary directory. sh reads it
// from its command line, as it always has.
func (s *Server) scriptFor(id identity, shell, body string) (script, error) {
	if shell == "" {
		shell = defaultScriptShell
	}
	prog, err := shellPath(shell)
	if err != nil {
		return script{}, err
	}
	if shell == wire.ShellSh {
		return script{launch: launch{argv: []string{prog, "-c", body}}}, nil
	}
	var file string
	err = s.asAccount(id, func() error {
		var err error
		file, err = writeScript(id.tempDir(), shell, body)
		return err
	})
	if err != nil {
		return script{}, fmt.Errorf("write the script for %s: %w", id.name, err)
	}
	if shell == wire.ShellCmd {
		return script{launch: cmdLaunch(prog, `"`+file+`"`), file: file}, nil
	}
	return script{launch: launch{argv: append(append([]string{prog}, powerShellFlags...), "-File", file)}, file: file}, nil
}

// writeScript writes body to a new file in dir with the extension shell
// needs (.ps1, .cmd) and returns its path. PowerShell 5.1 reads a file
// without a byte-order mark in the system's ANSI code page, so the UTF-8
// script gets one; batch files get CRLF line ends, without which cmd
// mis-parses labels.
func writeScript(dir, shell, body string) (string, error) {
	ext, data := ".ps1", append([]byte("\ufeff"), body...)
	if shell == wire.ShellCmd {
		ext = ".cmd"
		data = bytes.ReplaceAll([]byte(strings.ReplaceAll(body, "\r\n", "\n")), []byte("\n"), []byte("\r\n"))
	}
	f, err := os.CreateTemp(dir, "readymesh-job-*"+ext)
	if err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return filepath.Clean(f.Name()), nil
}
