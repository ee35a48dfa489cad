package update

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Paths are the files of one installed executable: the running one, the
// staged new one and the kept previous one, all in one directory, so
// every swap is a rename within a file system.
type Paths struct {
	Exe      string // the agent's executable
	New      string // EXE.new: the staged binary on trial
	Previous string // EXE.previous: the binary before the last commit
}

// PathsFor returns the paths of exe on this system.
func PathsFor(exe string) Paths { return pathsFor(exe, exeSuffix) }

// pathsFor names the staged and previous binaries after exe. With a
// suffix (".exe" on Windows) the names keep it (sessiond.new.exe), since
// Windows runs and shows a program by its extension.
func pathsFor(exe, suffix string) Paths {
	if suffix == "" {
		return Paths{Exe: exe, New: exe + ".new", Previous: exe + ".previous"}
	}
	base := exe
	if strings.EqualFold(filepath.Ext(exe), suffix) {
		base = exe[:len(exe)-len(suffix)]
	}
	return Paths{Exe: exe, New: base + ".new" + suffix, Previous: base + ".previous" + suffix}
}

// Executable returns the running program's path, absolute and with
// symlinks resolved: the file an update replaces, not a link to it.
func Executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("update: where is this executable: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", fmt.Errorf("update: %w", err)
	}
	return filepath.Abs(exe)
}
