package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/readymesh/readymesh/peer/flagfile"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond"
	"github.com/readymesh/readymesh/sessiond/service"
	"github.com/readymesh/readymesh/sessiond/update"
)

// enroll turns an enrolment token into a machine record and the agent's
// state directory.
func (e *env) enroll(name string, args []string) error {
	fs := e.flags(name)
	var cfg sessiond.EnrollConfig
	fs.StringVar(&cfg.Token, "token", "", "enrolment `token` from meshctl tokens create")
	fs.StringVar(&cfg.Name, "name", "", "machine `name` within its client")
	fs.StringVar(&cfg.StateDir, "state", "", "state `dir`ectory")
	fs.StringVar(&cfg.Broker, "broker", "", brokerUsage)
	if err := parse(fs, args); err != nil {
		return err
	}
	if cfg.Token == "" || cfg.Name == "" || cfg.StateDir == "" {
		return fmt.Errorf("enroll needs --token, --name and --state")
	}
	return e.enrollIn(cfg)
}

const brokerUsage = "dial this broker instead (broker.json path or multiaddr): the issuing broker elsewhere, or another broker of its cluster"

// enrollIn enrols into cfg.StateDir and says so.
func (e *env) enrollIn(cfg sessiond.EnrollConfig) error {
	en, err := sessiond.Enroll(e.ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "enrolled %s in client %s as machine %s (broker %s)\n", en.Name, en.Client, en.MachineID, en.Broker.PeerID)
	if en.ReleaseKey == "" {
		fmt.Fprintln(e.stdout, "the token carries no release key: updates are refused until one is pinned (sessiond trust-release-key)")
	} else {
		fmt.Fprintln(e.stdout, "release key pinned from the token: updates must be signed with it")
	}
	return nil
}

// runFlags are the flags of `sessiond run` other than --state. install
// takes them too and passes those given on to the service's command line.
type runFlags struct {
	cfg   sessiond.Config
	level string
	log   string
}

// defineRunFlags defines the run flags on fs.
func defineRunFlags(fs *flag.FlagSet) *runFlags {
	r := &runFlags{}
	fs.StringVar(&r.cfg.Inventory, "inventory", "", "JSON `file` that replaces the machine collectors (demo and test machines)")
	fs.DurationVar(&r.cfg.CheckInInterval, "interval", time.Hour, "check-in `interval`")
	fs.StringVar(&r.cfg.ConsentPolicy, "consent", wire.ConsentNever, "consent `policy` until a technician with admin rights sets one: never, window or session")
	fs.DurationVar(&r.cfg.ReconnectMax, "reconnect-max", 30*time.Second, "cap on the reconnect backoff")
	fs.DurationVar(&r.cfg.ConsentWindow, "consent-window", 8*time.Hour, "how long one approval lasts under the window policy")
	fs.DurationVar(&r.cfg.ConsentTimeout, "consent-timeout", 2*time.Minute, "how long a session request waits for an answer at the machine")
	fs.BoolVar(&r.cfg.RecordInput, "record-input", false, "keep technicians' keystrokes in terminal transcripts (off: they may hold passwords)")
	fs.StringVar(&r.cfg.SessionUser, "session-user", "", "`account` interactive sessions run as (default: nobody when run as root); elevated sessions run as the agent's user")
	fs.StringVar(&r.cfg.SessionAddr, "session-addr", "", "UDP `address` of the live-session socket (default: any address, a port the kernel picks)")
	fs.StringVar(&r.cfg.OnMetered, "on-metered", wire.MeteredNormal, "what to do on a metered connection until the fleet sets a policy (meshctl policy set): normal, or quiet (no bridge; a compact check-in every --quiet-interval)")
	fs.DurationVar(&r.cfg.QuietInterval, "quiet-interval", 6*time.Hour, "check-in `interval` in quiet mode, unless the fleet's policy sets one")
	fs.StringVar(&r.cfg.SystemBus, "system-bus", "", "D-Bus system bus `address` to watch for sleep, shutdown and metered connections (Linux; default: $DBUS_SYSTEM_BUS_ADDRESS, else the system's; none watches nothing, for agents that play another machine)")
	fs.StringVar(&r.level, "log-level", "info", "log `level`")
	fs.StringVar(&r.log, "log", "", "append the log to `file` instead of stderr, moving it to FILE.1 past 10 MiB (a Windows service has no stderr)")
	flagfile.DefineConfig(fs, "sessiond")
	return r
}

// runFlagNames are the names defineRunFlags defines.
var runFlagNames = func() map[string]bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	defineRunFlags(fs)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}()

// pathFlags are run flags that name files: passed on absolute, since a
// service does not start in the installer's directory.
var pathFlags = map[string]bool{"inventory": true, "log": true, flagfile.ConfigFlag: true}

// check refuses run flags the agent would fail on only once started.
func (r *runFlags) check() (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(r.level)); err != nil {
		return lv, fmt.Errorf("--log-level: %w", err)
	}
	if err := (&wire.ConsentPolicyArgs{Policy: r.cfg.ConsentPolicy}).Validate(); err != nil {
		return lv, fmt.Errorf("--consent: %w", err)
	}
	if r.cfg.OnMetered != wire.MeteredNormal && r.cfg.OnMetered != wire.MeteredQuiet {
		return lv, fmt.Errorf("--on-metered: %q is not normal or quiet", r.cfg.OnMetered)
	}
	if r.cfg.QuietInterval < time.Second || r.cfg.QuietInterval > 7*24*time.Hour {
		return lv, fmt.Errorf("--quiet-interval: %s is not between 1s and 7 days", r.cfg.QuietInterval)
	}
	return lv, nil
}

// passOn returns the run flags given on fs as --name=value, the paths
// made absolute when abs is set; then a config file among them is checked
// here, as the service's sessiond run will read it.
func passOn(fs *flag.FlagSet, abs bool) ([]string, error) {
	var args []string
	var err error
	fs.Visit(func(f *flag.Flag) {
		if !runFlagNames[f.Name] {
			return
		}
		v := f.Value.String()
		if pathFlags[f.Name] && abs && v != "" {
			if v, err = filepath.Abs(v); err != nil {
				return
			}
		}
		args = append(args, "--"+f.Name+"="+v)
	})
	if err == nil && abs && fs.Lookup(flagfile.ConfigFlag).Value.String() != "" {
		err = checkConfig(args)
	}
	return args, err
}

// run runs the agent until the context ends (SIGINT or SIGTERM in the
// binary), or as a Windows service until the SCM stops it.
func (e *env) run(name string, args []string) error {
	fs := e.flags(name)
	state := fs.String("state", "", "state `dir`ectory")
	rf := defineRunFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := loadConfig(fs, nil); err != nil {
		return err
	}
	if *state == "" {
		return fmt.Errorf("run needs --state")
	}
	lv, err := rf.check()
	if err != nil {
		return err
	}
	cfg := rf.cfg
	cfg.StateDir = *state
	cfg.Trial, cfg.Executable = update.FromWatchdog()
	var logTo io.Writer = e.stderr
	// A child of an update's watchdog logs to its stderr, which the
	// watchdog writes to the --log file: one process writes and rotates
	// it (Windows cannot move a file another process holds open).
	if rf.log != "" && !cfg.Trial {
		lf, err := service.OpenLog(rf.log, 0)
		if err != nil {
			return err
		}
		defer lf.Close()
		logTo = lf
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: lv}))
	return e.runAgent(cfg, append([]string{name}, args...), logTo)
}

// runAgent runs the agent of cfg, and the updates it stages, under the
// SCM when it started this process. args is the run command line, which
// a new binary on trial is started with; its log goes to logTo, as this
// process's does.
func (e *env) runAgent(cfg sessiond.Config, args []string, logTo io.Writer) error {
	run := func(ctx context.Context) error { return e.runUpdating(ctx, cfg, args, logTo) }
	managed, err := service.Managed()
	if err != nil {
		cfg.Logger.Warn("cannot tell whether a service manager started this process; running as a plain process", "err", err)
	}
	if !managed {
		return run(e.ctx)
	}
	cfg.Logger.Info("running as the Windows service " + service.WindowsName)
	if err := service.Run(e.ctx, run); err != nil {
		cfg.Logger.Error("agent stopped", "err", err) // the log is all a service has
		return err
	}
	return nil
}
