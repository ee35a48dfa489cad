package service

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/readymesh/readymesh/sessiond/service/systemd"
)

// Names the installed service goes by.
const (
	WindowsName  = "readymesh-sessiond"    // the Windows service's name
	LaunchdLabel = "io.readymesh.sessiond" // the launchd job's label
)

// StateSDDL is the security descriptor of the state directory on Windows:
// owned by Administrators (so whoever created the directory before cannot
// change its ACL again), with a protected DACL that gives SYSTEM and
// Administrators full control, inherited by everything inside, and
// nobody else any access. The agent's key and database live there.
const StateSDDL = "O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

// Spec is what the caller asks to install.
type Spec struct {
	// OS is the system to plan for, a GOOS value. Empty means this one;
	// only a plan for this system can be installed (others are printed).
	OS string
	// StateDir is the agent's state directory, an absolute path on OS. It
	// must not be empty (sessiond.DefaultStateDir gives the usual one).
	StateDir string
	// Source is the sessiond binary to install, normally the running one.
	// It must not be empty; it is copied to the plan's Exe.
	Source string
	// RunArgs are flags of `sessiond run` for the service's command line,
	// as --name=value, other than --state. Nil means the defaults.
	RunArgs []string
}

// Plan is what Install does on one system, decided without touching it.
// Install and Uninstall read it; --print prints it.
type Plan struct {
	OS       string
	StateDir string
	Source   string   // the binary copied to Exe
	Exe      string   // the binary the service runs, where only administrators can write
	Args     []string // Exe's arguments: run --state StateDir …
	LogFile  string   // where the agent's log goes; empty for the journal

	Windows *WindowsService // set when OS is windows
	Launchd *LaunchdJob     // set when OS is darwin
	Systemd *systemd.Unit   // set when OS is linux
}

// NewPlan decides how to install spec on its system.
func NewPlan(spec Spec) (*Plan, error) {
	goos := spec.OS
	if goos == "" {
		goos = runtime.GOOS
	}
	switch {
	case spec.Source == "":
		return nil, errors.New("sessiond install: no binary to install")
	case goos != "windows" && goos != "darwin" && goos != "linux":
		return nil, fmt.Errorf("sessiond install: no service manager support for %s", goos)
	case !absolute(goos, spec.StateDir):
		return nil, fmt.Errorf("sessiond install: the state directory %q is not an absolute path on %s", spec.StateDir, goos)
	}
	for _, a := range spec.RunArgs {
		if a == "--state" || strings.HasPrefix(a, "--state=") {
			return nil, errors.New("sessiond install: --state is the plan's own, not a run flag to pass on")
		}
	}
	switch goos {
	case "windows":
		return windowsPlan(spec), nil
	case "darwin":
		return darwinPlan(spec), nil
	}
	return linuxPlan(spec), nil
}

// absolute reports whether path is absolute on goos, whatever system
// this is.
func absolute(goos, path string) bool {
	if goos != "windows" {
		return strings.HasPrefix(path, "/")
	}
	if strings.HasPrefix(path, `\\`) {
		return true
	}
	return len(path) >= 3 && path[1] == ':' && (path[2] == '\\' || path[2] == '/') &&
		('a' <= path[0]|0x20 && path[0]|0x20 <= 'z')
}

// runArgs is the service's command line after the binary: run on the
// state directory, logging to logFile when given (launchd logs the
// output itself) unless the caller chose a log file, then the caller's
// run flags.
func runArgs(stateDir, logFile string, extra []string) []string {
	args := []string{"run", "--state", stateDir}
	if logFile != "" && !hasFlag(extra, "log") {
		args = append(args, "--log", logFile)
	}
	return append(args, extra...)
}

// hasFlag reports whether args set the flag name.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// env is the environment variable name on this system, or def when the
// plan is for another one or the variable is unset.
func env(goos, name, def string) string {
	if v := os.Getenv(name); v != "" && goos == runtime.GOOS {
		return strings.TrimRight(v, `\/`)
	}
	return def
}

// Print writes the plan for a person to read.
func (p *Plan) Print(w io.Writer) error {
	pw := &planWriter{w: w}
	pw.line("system", p.OS)
	pw.line("binary", p.Exe+"  (copied from "+p.Source+")")
	pw.line("state", p.StateDir)
	pw.line("log", p.logWhere())
	switch {
	case p.Windows != nil:
		p.Windows.print(pw, p)
	case p.Launchd != nil:
		p.Launchd.print(pw, p)
	case p.Systemd != nil:
		p.printSystemd(pw)
	}
	return pw.err
}

// logWhere says where the agent's log goes.
func (p *Plan) logWhere() string {
	if p.LogFile == "" {
		return "the journal (journalctl -u " + SystemdUnit + ")"
	}
	return p.LogFile
}

// planWriter writes aligned lines and keeps the first error.
type planWriter struct {
	w   io.Writer
	err error
}

func (pw *planWriter) line(key, value string) {
	if pw.err == nil {
		_, pw.err = fmt.Fprintf(pw.w, "%-10s %s\n", key, value)
	}
}

// durations renders delays as "5s, 30s, 1m0s".
func durations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ", ")
}
