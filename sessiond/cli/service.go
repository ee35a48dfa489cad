package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond"
	"github.com/readymesh/readymesh/sessiond/localdb"
	"github.com/readymesh/readymesh/sessiond/service"
)

// install makes this machine's agent a service of the system (package
// service): it enrols with --token and --name, or reuses the enrolment in
// --state, and takes the run flags for the service's command line.
func (e *env) install(name string, args []string) error {
	fs := e.flags(name)
	var cfg sessiond.EnrollConfig
	fs.StringVar(&cfg.Token, "token", "", "enrolment `token` from meshctl tokens create (not needed when --state is enrolled)")
	fs.StringVar(&cfg.Name, "name", "", "machine `name` within its client")
	fs.StringVar(&cfg.Broker, "broker", "", brokerUsage)
	fs.StringVar(&cfg.StateDir, "state", "", "state `dir`ectory (default: the system's, see --print)")
	printOnly := fs.Bool("print", false, "print what would be installed, and install nothing")
	goos := fs.String("os", runtime.GOOS, "with --print: the `system` to plan for (linux, windows, darwin)")
	rf := defineRunFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *goos != runtime.GOOS && !*printOnly {
		return fmt.Errorf("--os %s plans for another system: it needs --print", *goos)
	}
	if _, err := rf.check(); err != nil {
		return err
	}
	plan, err := e.plan(fs, *goos, cfg.StateDir)
	if err != nil {
		return err
	}
	if *printOnly {
		return plan.Print(e.stdout)
	}
	if err := checkEnrolment(cfg); err != nil {
		return err
	}
	cfg.StateDir = plan.StateDir
	return service.Install(e.ctx, plan, func(ctx context.Context) error { return e.enrollOrReuse(cfg) }, e.stdout)
}

// uninstall removes the service, and with --purge its state.
func (e *env) uninstall(name string, args []string) error {
	fs := e.flags(name)
	state := fs.String("state", "", "state `dir`ectory of the installed agent (default: the system's)")
	purge := fs.Bool("purge", false, "also remove the state directory (the machine's key and enrolment) and the log")
	if err := parse(fs, args); err != nil {
		return err
	}
	plan, err := e.plan(nil, runtime.GOOS, *state)
	if err != nil {
		return err
	}
	return service.Uninstall(plan, *purge, e.stdout)
}

// plan plans the service on goos for the state directory (the system's
// when empty) with the run flags given on fs, if any.
func (e *env) plan(fs *flag.FlagSet, goos, state string) (*service.Plan, error) {
	here := goos == runtime.GOOS
	if state == "" {
		state = sessiond.DefaultStateDir(goos)
	} else if here {
		abs, err := filepath.Abs(state)
		if err != nil {
			return nil, fmt.Errorf("--state: %w", err)
		}
		state = abs
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary: %w", err)
	}
	var extra []string
	if fs != nil {
		if extra, err = passOn(fs, here); err != nil {
			return nil, err
		}
	}
	return service.NewPlan(service.Spec{OS: goos, StateDir: state, Source: exe, RunArgs: extra})
}

// checkEnrolment checks what can be checked of the enrolment flags
// before anything is installed.
func checkEnrolment(cfg sessiond.EnrollConfig) error {
	switch {
	case cfg.Token == "" && (cfg.Name != "" || cfg.Broker != ""):
		return errors.New("--name and --broker go with --token")
	case cfg.Token == "":
		return nil // the state directory must be enrolled: enrollOrReuse checks
	case cfg.Name == "":
		return errors.New("install needs --name with --token")
	}
	if _, err := wire.ParseToken(wire.KindEnroll, cfg.Token); err != nil {
		return fmt.Errorf("--token: %w", err)
	}
	if err := wire.ValidName("machine name", cfg.Name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	return nil
}

// enrollOrReuse enrols into the prepared state directory, or without a
// token reuses the enrolment it holds (after uninstall without --purge).
func (e *env) enrollOrReuse(cfg sessiond.EnrollConfig) error {
	if cfg.Token != "" {
		return e.enrollIn(cfg)
	}
	en, err := enrolment(cfg.StateDir)
	if err != nil {
		return fmt.Errorf("install needs --token and --name: %w", err)
	}
	fmt.Fprintf(e.stdout, "using the enrolment in %s: %s in client %s as machine %s\n", cfg.StateDir, en.Name, en.Client, en.MachineID)
	return nil
}

// enrolment is the enrolment stored in the state directory dir.
func enrolment(dir string) (localdb.Enrolment, error) {
	path := filepath.Join(dir, sessiond.DBFile)
	if _, err := os.Stat(path); err != nil {
		return localdb.Enrolment{}, fmt.Errorf("%s holds no enrolled agent", dir)
	}
	db, err := localdb.Open(path)
	if err != nil {
		return localdb.Enrolment{}, err
	}
	defer db.Close()
	return db.Enrolment()
}
