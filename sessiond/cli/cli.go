// Package cli is the agent's command line: enrol a machine, run the agent,
// install it as the system's service (package service), and talk to the
// running agent through its control channel (ask for a check-in, read its
// status, answer session requests, pause remote input).
// The sessiond binary is a thin main around Run, so the commands can be
// tested without building it.
//
// Errors go to stderr with a non-zero exit status: 2 for a command line
// that could not be understood, 1 when the command failed.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/readymesh/readymesh/peer/buildinfo"
)

const usage = `usage:
  sessiond enroll --token T --name NAME --state DIR [--broker ADDR]
  sessiond run --state DIR [--config FILE] [--inventory FILE] [--interval 1h] [--consent never|window|session] [--log FILE]
  sessiond install --token T --name NAME [--broker ADDR] [--state DIR] [run flags] [--print [--os linux|windows|darwin]]
  sessiond uninstall [--state DIR] [--purge]
  sessiond checkin [--state DIR]
  sessiond status [--state DIR] [--json]
  sessiond requests [--state DIR] [--json]   session requests waiting for your approval
  sessiond approve [--state DIR] (REQUEST|--all)
  sessiond deny [--state DIR] REQUEST
  sessiond pause-input [--state DIR]     (resume-input): hold back all remote input, e.g. during a call
  sessiond trust-release-key [--state DIR] [--replace] KEY   pin the release key updates must be signed with (RW… or a .pub file)
  sessiond version [--json]
  sessiond exit-status --state DIR   (systemd's ExecStopPost) keep how the agent's process ended for its next run
--state defaults to the directory sessiond install uses, except for enroll and run.`

// ErrUsage marks a command line that could not be understood; the error's
// text says why and repeats the usage.
var ErrUsage = errors.New("usage")

// usageError is an ErrUsage whose text is only its message.
type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

// ExitError asks the caller to exit with Code and print nothing: Run has
// already said why on stderr (the usage, or a flag error and the flags).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// env is what a command runs with.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
}

// commands maps a command name to what runs it; the name is passed on for
// commands that serve two (pause-input and resume-input, approve and deny).
var commands = map[string]func(e *env, name string, args []string) error{
	"enroll":       (*env).enroll,
	"run":          (*env).run,
	"install":      (*env).install,
	"uninstall":    (*env).uninstall,
	"checkin":      (*env).checkin,
	"status":       (*env).status,
	"pause-input":  (*env).pauseInput,
	"resume-input": (*env).pauseInput,
	"requests":     (*env).requests,
	"approve":      (*env).answer,
	"deny":         (*env).answer,
	"version":      (*env).version,
	"exit-status":  (*env).exitStatus,

	"trust-release-key": (*env).trustReleaseKey,
}

// version prints the build: version, commit, Go and protocol versions.
func (e *env) version(name string, args []string) error {
	fs := e.flags(name)
	asJSON := fs.Bool("json", false, "print JSON: module version, commit, Go version, protocol versions")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("version takes no arguments, got %q", fs.Args())}
	}
	return buildinfo.Write(e.stdout, "sessiond", *asJSON)
}

// Run runs sessiond with args (without the program name), writing output
// to stdout and usage and flag errors to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return &ExitError{Code: 2}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	f, ok := commands[name]
	if !ok {
		return &usageError{msg: fmt.Sprintf("unknown command %q\n%s", name, usage)}
	}
	return f(&env{ctx: ctx, stdout: stdout, stderr: stderr}, name, rest)
}

// flags returns the flag set of one command; its errors and help go to
// stderr.
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("sessiond "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parse parses args into fs. The flag package has then printed what was
// wrong, or the flags for -h, so the error only carries the exit status:
// 0 for help, 2 for a bad flag.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return &ExitError{Code: 0}
	}
	return &ExitError{Code: 2}
}
