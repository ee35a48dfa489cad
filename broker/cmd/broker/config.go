package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/readymesh/readymesh/peer/flagfile"
)

// The broker's flags can come from a TOML file named by --config (or
// $READYMESH_BROKER_CONFIG) and from READYMESH_BROKER_* variables, each
// flag under its own name (package flagfile). No file is read unless one
// is named: /etc/readymesh/broker.toml is only where the service unit
// points --config, so a broker started by hand, as the tests start theirs,
// never picks up a file it was not told about.

// configOptions map broker run's flags to the file and the environment.
var configOptions = flagfile.Options{Program: "broker", Lists: []string{"listen", "join", "wan-join"}}

// loadConfig loads the config file and the environment into fs, under
// the flags it parsed. A refused key or value is a command line that
// could not be understood: it is said on stderr, and the broker exits 2
// before it opens anything.
func loadConfig(fs *flag.FlagSet) (*flagfile.Config, error) {
	conf, err := flagfile.Load(fs, configOptions)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), line)
		}
		return nil, errUsage
	}
	return conf, nil
}

// config runs "broker config print [--config FILE] [run flags]": it
// prints the configuration broker run would serve with, as a config file
// that says where each value came from.
func config(args []string) error {
	if len(args) == 0 || args[0] != "print" {
		fmt.Fprintln(os.Stderr, "usage: broker config print [--config FILE] [run flags]")
		return errUsage
	}
	fs := newFlags("config print")
	defineRunFlags(fs)
	if err := parseFlags(fs, args[1:], 0); err != nil {
		return err
	}
	conf, err := loadConfig(fs)
	if err != nil {
		return err
	}
	return conf.Print(os.Stdout)
}
