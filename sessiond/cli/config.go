package cli

import (
	"flag"
	"io"

	"github.com/readymesh/readymesh/peer/flagfile"
)

// sessiond run's flags can come from a TOML file named by --config (or
// $READYMESH_SESSIOND_CONFIG) and from READYMESH_SESSIOND_* variables,
// each flag under its own name, --state included (package flagfile). No
// file is read unless one is named; sessiond install passes --config on to
// the service's command line, absolute.

// loadConfig loads the config file and the environment (environ in
// os.Environ's form; nil: this process's) into fs, under the flags it
// parsed. A refused key, value or variable is a command line that could not
// be understood (exit status 2), with the file's line or the variable.
func loadConfig(fs *flag.FlagSet, environ []string) error {
	if _, err := flagfile.Load(fs, flagfile.Options{Program: "sessiond", Environ: environ}); err != nil {
		return &usageError{msg: err.Error()}
	}
	return nil
}

// checkConfig checks, for install, that sessiond run with the run flags
// args (--config among them) accepts its config file: the file is read
// here rather than found wrong by a service that then does not start. The
// service has an environment of its own, so this one's is not read.
func checkConfig(args []string) error {
	fs := flag.NewFlagSet("sessiond run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("state", "", "")
	rf := defineRunFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loadConfig(fs, []string{}); err != nil {
		return err
	}
	_, err := rf.check()
	return err
}
