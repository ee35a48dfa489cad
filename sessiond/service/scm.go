package service

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// WindowsService is how sessiond is registered with the Service Control
// Manager. It always runs as LocalSystem, the account that can open every
// session on the machine, with automatic start.
type WindowsService struct {
	Name        string
	DisplayName string
	Description string
	// Recovery are the delays before the SCM restarts the service after
	// its first, second and later failures: a crash, or an exit with an
	// error (RecoverOnError). Short first, so a one-off failure costs
	// seconds; longer after, so a failure that repeats (a broken disk, a
	// bad state directory) does not spin.
	Recovery []time.Duration
	// ResetPeriod is how long the service must run without failing
	// before the SCM counts failures from the first again.
	ResetPeriod time.Duration
	// RecoverOnError applies Recovery also when the service stops with an
	// error exit code, not only when its process dies.
	RecoverOnError bool
	// SecureDirs get StateSDDL, outermost first: the readymesh parent of
	// the state directory when that is the usual one (so nobody else can
	// rename the state directory away and put another in its place), then
	// the state directory.
	SecureDirs []string
}

// windowsPlan installs to %ProgramFiles%\readymesh and logs into the state
// directory, which only administrators can read.
func windowsPlan(spec Spec) *Plan {
	programFiles := env("windows", "ProgramFiles", `C:\Program Files`)
	state := strings.TrimRight(spec.StateDir, `\/`)
	p := &Plan{OS: "windows", StateDir: state, Source: spec.Source,
		Exe: programFiles + `\readymesh\sessiond.exe`, LogFile: state + `\sessiond.log`}
	p.Args = runArgs(p.StateDir, p.LogFile, spec.RunArgs)
	p.Windows = &WindowsService{
		Name:           WindowsName,
		DisplayName:    "readymesh agent",
		Description:    "Keeps this machine reachable to its MSP's technicians through readymesh, checks in its readiness and serves the sessions the person here allows.",
		Recovery:       []time.Duration{5 * time.Second, 30 * time.Second, 60 * time.Second},
		ResetPeriod:    24 * time.Hour,
		RecoverOnError: true,
		SecureDirs:     []string{state},
	}
	if parent, ok := strings.CutSuffix(strings.ToLower(state), `\readymesh\sessiond`); ok && parent != "" {
		p.Windows.SecureDirs = []string{state[:len(parent)] + `\readymesh`, state}
	}
	return p
}

func (ws *WindowsService) print(pw *planWriter, p *Plan) {
	pw.line("acl", StateSDDL+" on "+strings.Join(ws.SecureDirs, ", "))
	pw.line("service", fmt.Sprintf("%s (%q), LocalSystem, automatic start", ws.Name, ws.DisplayName))
	pw.line("command", CommandLine(p.Exe, p.Args))
	when := "a crash"
	if ws.RecoverOnError {
		when = "a crash or an error exit"
	}
	pw.line("recovery", fmt.Sprintf("restart after %s following %s; failures counted afresh after %s", durations(ws.Recovery), when, ws.ResetPeriod))
	pw.line("then", "enrol unless the state directory is enrolled, copy the binary, create the service, start it")
}

// CommandLine is the command line the SCM stores for exe and args, each
// quoted as CommandLineToArgvW reads it back.
func CommandLine(exe string, args []string) string {
	parts := []string{quoteArg(exe)}
	for _, a := range args {
		parts = append(parts, quoteArg(a))
	}
	return strings.Join(parts, " ")
}

// quoteArg quotes one argument for a Windows command line: as is when it
// has no blank or quote, else in quotes, with backslashes doubled where
// they precede a quote (an escaped one, or the closing one).
func quoteArg(a string) string {
	if a == "" {
		return `""`
	}
	if !strings.ContainsAny(a, " \t\"") {
		return a
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for i := 0; i < len(a); i++ {
		switch c := a[i]; c {
		case '\\':
			slashes++
		case '"':
			b.WriteString(strings.Repeat(`\`, slashes+1))
			slashes = 0
		default:
			slashes = 0
		}
		b.WriteByte(a[i])
	}
	b.WriteString(strings.Repeat(`\`, slashes))
	b.WriteByte('"')
	return b.String()
}

// scm is the Service Control Manager as install uses it; scm_windows.go
// has the real one.
type scm interface {
	// exists reports whether a service called name is registered.
	exists(name string) (bool, error)
	// create registers the service: p.Exe with p.Args, LocalSystem,
	// automatic start.
	create(p *Plan) error
	// setRecovery sets ws's recovery actions on the registered service.
	setRecovery(ws *WindowsService) error
	// start starts the service and waits until it runs.
	start(name string) error
	// stop stops the service and waits until it has stopped; a service
	// that is not running is not an error.
	stop(name string) error
	// delete unregisters the service.
	delete(name string) error
}

// windowsSystem installs through an scm.
type windowsSystem struct {
	scm scm
	// secureDir sets the security descriptor sddl on dir.
	secureDir func(dir, sddl string) error
	// isElevated reports whether this process runs with administrator
	// rights.
	isElevated func() bool
}

var _ system = (*windowsSystem)(nil)

func (w *windowsSystem) elevated() error {
	if !w.isElevated() {
		return errors.New("it needs administrator rights: run it from an elevated prompt (Run as administrator)")
	}
	return nil
}

func (w *windowsSystem) installed(p *Plan) (bool, error) { return w.scm.exists(p.Windows.Name) }

// prepare makes the state directory and secures it, outermost first,
// before the agent's key is written into it.
func (w *windowsSystem) prepare(p *Plan) error {
	if err := os.MkdirAll(p.StateDir, 0o700); err != nil {
		return err
	}
	for _, dir := range p.Windows.SecureDirs {
		if err := w.secureDir(dir, StateSDDL); err != nil {
			return fmt.Errorf("securing %s: %w", dir, err)
		}
	}
	return nil
}

// register creates the service with its recovery actions; a service that
// would not recover is removed again, and if that fails too the error
// says so: an automatic-start service without recovery stays behind.
func (w *windowsSystem) register(p *Plan) error {
	name := p.Windows.Name
	if err := w.scm.create(p); err != nil {
		return fmt.Errorf("creating service %s: %w", name, err)
	}
	if err := w.scm.setRecovery(p.Windows); err != nil {
		err = fmt.Errorf("setting the recovery actions of %s: %w", name, err)
		if derr := w.scm.delete(name); derr != nil {
			return fmt.Errorf("%w; deleting service %s again failed too (%w): run sessiond uninstall", err, name, derr)
		}
		return err
	}
	return nil
}

func (w *windowsSystem) start(p *Plan) error {
	if err := w.scm.start(p.Windows.Name); err != nil {
		return fmt.Errorf("starting service %s: %w (its log: %s)", p.Windows.Name, err, p.LogFile)
	}
	return nil
}

// remove stops the service and deletes it. The delete is asked for even
// when the stop fails (a service that is starting, or slow to stop): the
// service manager then marks it for deletion and removes it once it has
// stopped, so a failed install or uninstall never leaves an automatic-start
// service with recovery actions behind.
func (w *windowsSystem) remove(p *Plan) error {
	var errs []error
	if err := w.scm.stop(p.Windows.Name); err != nil {
		errs = append(errs, fmt.Errorf("stopping service %s: %w", p.Windows.Name, err))
	}
	if err := w.scm.delete(p.Windows.Name); err != nil {
		errs = append(errs, fmt.Errorf("deleting service %s: %w", p.Windows.Name, err))
	}
	return errors.Join(errs...)
}
