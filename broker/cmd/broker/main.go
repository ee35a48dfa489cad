// Command broker runs a readymesh regional broker.
//
//	broker [run] --data DIR [--config FILE] [--listen ADDR[,ADDR]] [--http ADDR] [--name N] [--region R] …
//	broker gossip-key FILE
//	broker backup --data DIR --out FILE [--no-key]
//	broker restore FILE --data DIR
//	broker install [--max-agents N] [run flags] [--print]
//	broker uninstall [--purge]
//	broker config print [--config FILE] [run flags]
//	broker admin-credential [--rotate] --data DIR
//	broker version [--json]
//
// Once it serves, it writes DIR/broker.json and DIR/admin.credential and
// prints one line starting with "broker ready" to stdout. Its other
// commands work on a data directory, with or without a running broker.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/readymesh/readymesh/peer/buildinfo"
)

// commands maps each command to what runs it with the rest of the command
// line. A command line starting with a flag is "run".
var commands = map[string]func(args []string) error{
	"run":        run,
	"gossip-key": gossipKey,
	"backup":     backupCmd,
	"restore":    restoreCmd,
	"version":    version,
	"install":    install,
	"uninstall":  uninstall,
	"config":     config,

	"admin-credential": adminCredential,
}

func main() {
	args := os.Args[1:]
	name := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		printUsage()
		return
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "broker: unknown command %q\n", name)
		printUsage()
		os.Exit(2)
	}
	if err := cmd(args); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2) // the flag package has said why
		}
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fatal(err)
	}
}

// errUsage marks a command line that could not be understood, after the
// flag package or the command has said why on stderr.
var errUsage = errors.New("usage")

func printUsage() {
	fmt.Fprintln(os.Stderr, `usage:
  broker [run] --data DIR [flags]     serve (broker run -h lists the flags)
  broker gossip-key FILE              write a new gossip key file
  broker backup --data DIR --out FILE [--no-key]   back up the store and key, while the broker serves or not
  broker restore FILE --data DIR      check a backup and lay it down as a new data directory
  broker install [--max-agents N] [run flags] [--print]   a systemd service (Linux); --print shows the unit
  broker uninstall [--purge]          stop and remove the service; --purge also the data directory
  broker config print [flags]         broker run's effective config: each value and where it came from
  broker admin-credential [--rotate] --data DIR   where the admin credential is; --rotate replaces it and signs out every admin key on every broker
  broker version [--json]             this build's version, commit, Go and protocol versions`)
}

// newFlags returns the flag set of one command, its errors on stderr.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("broker "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// parseFlags parses args into fs and refuses arguments the command does
// not take (want is how many it takes).
func parseFlags(fs *flag.FlagSet, args []string, want int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != want {
		fmt.Fprintf(os.Stderr, "%s: takes %d argument(s), got %q\n", fs.Name(), want, fs.Args())
		fs.Usage()
		return errUsage
	}
	return nil
}

// version prints the build information.
func version(args []string) error {
	fs := newFlags("version")
	asJSON := fs.Bool("json", false, "print JSON: module version, commit, Go version, protocol versions")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	return buildinfo.Write(os.Stdout, "broker", *asJSON)
}

// gossipKey writes a new gossip key file.
func gossipKey(args []string) error {
	fs := newFlags("gossip-key")
	if err := parseFlags(fs, args, 1); err != nil {
		return err
	}
	return writeGossipKey(fs.Arg(0))
}

// writeGossipKey creates a key file with one new 32-byte key, mode 0600.
// Copy the same file to every broker of the cluster.
func writeGossipKey(path string) error {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("gossip-key: %w", err)
	}
	if _, err := fmt.Fprintf(f, "# readymesh gossip key: copy this file to every broker (mode 0600)\n%s\n",
		base64.StdEncoding.EncodeToString(key[:])); err != nil {
		f.Close()
		return fmt.Errorf("gossip-key: %w", err)
	}
	return f.Close()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "broker:", err)
	os.Exit(1)
}
