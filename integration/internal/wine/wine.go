// Package wine runs the project's Windows binaries on Linux under Wine,
// for the tests: it prepares a Wine prefix (Windows 10, with the
// ProcessPrng shim Go programs need) and starts programs in it on a
// terminal.
//
// Why a terminal: Wine gives a shell started on a pseudo console (the
// agent's terminals) the console's handles only in place of its parent's
// console handles. A program whose standard handles are files or pipes
// passes those on instead, and the shell never sees the terminal. Real
// Windows attaches the shell either way (see sessiond/channel), so the
// harness runs Windows programs as a person at a console would.
//
// Wine makes each file's Windows access list up from its Unix mode and
// ignores SetNamedSecurityInfo, so programs run here with umask 077: the
// agent's key file then has the private access list the agent checks for,
// as it has on Windows, where the agent sets it.
//
// What Wine 8 cannot do (UDP sockets, PowerShell beyond a stub, the
// Windows Update Agent, the service manager's recovery actions,
// CreateProcessAsUser with a console user's token) is covered by unit
// tests behind small interfaces instead; the README lists which.
package wine

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

//go:embed shim/bcryptprimitives.c
var shimSource []byte

// Binary finds the wine launcher: Debian installs it as wine-stable (the
// wine package) or only as /usr/lib/wine/wine64 (wine64 alone).
func Binary() (string, error) {
	for _, name := range []string{"wine", "wine-stable", "wine64"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	if _, err := os.Stat("/usr/lib/wine/wine64"); err == nil {
		return "/usr/lib/wine/wine64", nil
	}
	return "", errors.New("wine is not installed (make deps installs Debian's wine, wine64 and gcc-mingw-w64-x86-64)")
}

// DefaultPrefix is where the tests keep their Wine prefix: under the
// user's cache, shared by every test run (making one takes seconds).
// READYMESH_WINEPREFIX overrides it.
func DefaultPrefix() string {
	if p := os.Getenv("READYMESH_WINEPREFIX"); p != "" {
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "readymesh", "wine-prefix")
}

// Env is the environment for running programs in prefix: Wine's own
// messages off, and no display (nothing here opens a window).
func Env(prefix string) []string {
	env := []string{"WINEPREFIX=" + prefix, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=", "DISPLAY="}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "WINEPREFIX" && k != "WINEDEBUG" && k != "DISPLAY" && k != "WINEDLLOVERRIDES" {
			env = append(env, kv)
		}
	}
	return env
}

// Ensure makes prefix ready if it is not: a fresh Windows 10 prefix with
// the ProcessPrng shim in system32. Test packages run in parallel, so a
// lock file serialises the making; a prefix that is ready is left alone.
func Ensure(ctx context.Context, prefix string) error {
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return fmt.Errorf("wine prefix: %w", err)
	}
	lock, err := os.OpenFile(prefix+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("wine prefix lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("wine prefix lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	shim := filepath.Join(prefix, "drive_c", "windows", "system32", "bcryptprimitives.dll")
	ready := filepath.Join(prefix, ".readymesh-ready")
	if b, err := os.ReadFile(ready); err == nil && bytes.Equal(b, shimSum()) {
		if _, err := os.Stat(shim); err == nil {
			return nil
		}
	}
	return build(ctx, prefix, shim, ready)
}

// shimSum identifies the shim's source, so a changed shim remakes it.
func shimSum() []byte { return fmt.Appendf(nil, "shim %x\n", sha256.Sum256(shimSource)) }

func build(ctx context.Context, prefix, shim, ready string) error {
	wine, err := Binary()
	if err != nil {
		return err
	}
	gcc, err := exec.LookPath("x86_64-w64-mingw32-gcc")
	if err != nil {
		return errors.New("x86_64-w64-mingw32-gcc is not installed (make deps installs gcc-mingw-w64-x86-64)")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = Env(prefix)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run(wine, "wineboot", "-i"); err != nil {
		return fmt.Errorf("wine prefix %s: %w", prefix, err)
	}
	// The registry then says Windows 10 (build 18362); Wine's default is 7.
	if err := run(wine, "winecfg", "-v", "win10"); err != nil {
		return fmt.Errorf("wine prefix %s: %w", prefix, err)
	}
	// wineboot returns before wineserver has written the registry out.
	if ws, err := wineserver(); err == nil {
		run(ws, "-w")
	}
	src := filepath.Join(prefix, "readymesh-shim.c")
	if err := os.WriteFile(src, shimSource, 0o644); err != nil {
		return err
	}
	if err := run(gcc, "-shared", "-O2", "-o", shim, src, "-ladvapi32"); err != nil {
		return fmt.Errorf("ProcessPrng shim: %w", err)
	}
	return os.WriteFile(ready, shimSum(), 0o644)
}

// wineserver finds Wine's server, which outlives the programs it serves
// by a few seconds.
func wineserver() (string, error) {
	for _, name := range []string{"wineserver", "wineserver-stable", "/usr/lib/wine/wineserver64"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no wineserver")
}

// Command prepares exe (a Windows program, by its Linux path) with args
// to run in prefix. Start it with Start, so that it has a terminal.
func Command(ctx context.Context, prefix, exe string, args ...string) (*exec.Cmd, error) {
	wine, err := Binary()
	if err != nil {
		return nil, err
	}
	// umask 077: Wine makes a file's Windows access list up from its Unix
	// mode and ignores SetNamedSecurityInfo, so files the agent makes
	// private (its key) are private only when created 0600.
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `umask 077 && exec "$0" "$@"`, wine, exe}, args...)...)
	cmd.Env = Env(prefix)
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}
