package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond"
	"github.com/readymesh/readymesh/sessiond/ipc"
)

// run runs the command line and returns its stdout, stderr and error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// exitCode is the status the binary's main exits with for err.
func exitCode(err error) int {
	var exit *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Code
	case errors.Is(err, ErrUsage):
		return 2
	}
	return 1
}

// otherOS is a system with a service manager that is not this one: a
// relative --state can be made absolute only on this one.
var otherOS = map[bool]string{true: "darwin", false: "windows"}[runtime.GOOS == "windows"]

// TestUsageAndExitCodes: what goes to stdout and stderr, and the exit
// status, for command lines that never reach an agent.
func TestUsageAndExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string // substrings; "" checks nothing
		err            string // the error main prints after "sessiond: "
		emptyOut       bool
	}{
		{args: nil, code: 2, stderr: "usage:\n  sessiond enroll", emptyOut: true},
		{args: []string{"version"}, stdout: "sessiond " + buildinfo.Version + " (commit "},
		{args: []string{"version", "--json"}, stdout: `"protocol": ` + strconv.Itoa(wire.Protocol)},
		{args: []string{"version", "x"}, code: 2, err: `version takes no arguments, got ["x"]`},
		{args: []string{"help"}, stdout: "usage:\n  sessiond enroll"},
		{args: []string{"--help"}, stdout: "sessiond pause-input [--state DIR]"},
		{args: []string{"bogus"}, code: 2, err: "unknown command \"bogus\"\nusage:\n", emptyOut: true},
		{args: []string{"run", "-h"}, code: 0, stderr: "Usage of sessiond run:", emptyOut: true},
		{args: []string{"run", "--nope"}, code: 2, stderr: "flag provided but not defined: -nope", emptyOut: true},
		{args: []string{"run"}, code: 1, err: "run needs --state"},
		{args: []string{"run", "--state", "x", "--log-level", "loud"}, code: 1, err: "--log-level:"},
		{args: []string{"enroll", "--token", "t"}, code: 1, err: "enroll needs --token, --name and --state"},
		{args: []string{"checkin", "--state", ""}, code: 1, err: "checkin needs --state"},
		{args: []string{"checkin"}, code: 1, err: "no agent running on " + sessiond.DefaultStateDir(runtime.GOOS)},
		{args: []string{"pause-input", "--state="}, code: 1, err: "pause-input needs --state"},
		{args: []string{"run", "--state", "x", "--consent", "always"}, code: 1, err: `--consent: consent policy "always" is not never, window or session`},
		{args: []string{"install", "--print", "--log-level", "loud"}, code: 1, err: "--log-level:"},
		{args: []string{"install", "--print", "--consent", "always"}, code: 1, err: "--consent: consent policy"},
		{args: []string{"install", "--os", "plan9"}, code: 1, err: "--os plan9 plans for another system: it needs --print"},
		{args: []string{"install", "--print", "--os", "linux"}, stdout: "\nExecStart=/opt/readymesh/bin/sessiond run --state /var/lib/readymesh/sessiond\n"},
		{args: []string{"install", "--print", "--os", otherOS, "--state", "rel"}, code: 1, err: `"rel" is not an absolute path on ` + otherOS},
		{args: []string{"uninstall", "--bogus"}, code: 2, stderr: "flag provided but not defined: -bogus"},
		{args: []string{"approve", "--state", "d"}, code: 1, err: "approve needs a request ID (see sessiond requests)"},
		{args: []string{"deny", "--state", "d", "--all"}, code: 1, err: "deny needs a request ID"},
		{args: []string{"approve", "--state", "d", "--all", "x"}, code: 1, err: "approve takes a request ID or --all, not both"},
		{args: []string{"status", "--state", "/nonexistent"}, code: 1, err: "no agent running on /nonexistent"},
	} {
		out, errOut, err := run(t, tc.args...)
		name := strings.Join(tc.args, " ")
		if got := exitCode(err); got != tc.code {
			t.Errorf("%q: exit %d (%v), want %d", name, got, err, tc.code)
		}
		if !strings.Contains(out, tc.stdout) || (tc.emptyOut && out != "") {
			t.Errorf("%q: stdout %q, want %q", name, out, tc.stdout)
		}
		if !strings.Contains(errOut, tc.stderr) {
			t.Errorf("%q: stderr %q, want %q", name, errOut, tc.stderr)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: error %v, want %q", name, err, tc.err)
		}
	}
}

// fakeAgent answers control requests on dir's socket with reply, and
// reports each request's op and argument on the returned channel.
func fakeAgent(t *testing.T, reply sessiond.ControlReply) (string, <-chan string) {
	t.Helper()
	dir := testdir.New(t)
	ln, err := ipc.Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ops := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var req struct{ Op, Arg string }
		json.NewDecoder(c).Decode(&req)
		ops <- req.Op + " " + req.Arg
		json.NewEncoder(c).Encode(reply)
	}()
	return dir, ops
}

// TestControlCommands: the commands that talk to a running agent send the
// right request and print its answer.
func TestControlCommands(t *testing.T) {
	started := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := &sessiond.Status{MachineID: "12D3K", Name: "pc-1", Client: "acme", Broker: "12D3B", BridgeUp: true,
		SessionPort: 7000, InputPaused: true, Metered: true, OnMetered: wire.MeteredNormal,
		Sessions: []wire.SessionInfo{{Session: "0123456789abcdef", Technician: "tina", Mode: wire.ModeInteractive,
			Path: "direct-quic", Started: started}}}
	quiet := &sessiond.Status{MachineID: "12D3K", Name: "pc-1", Client: "acme", Metered: true, OnMetered: wire.MeteredQuiet,
		Away: &wire.Leaving{Reason: wire.AwayQuiet, Detail: "on a metered connection"}, UDPBlockedSince: &started}
	req := wire.ConsentRequest{ID: "01234567", Technician: "tina", Mode: wire.ModeReadOnly, Asked: time.Now()}
	for _, tc := range []struct {
		args  []string
		reply sessiond.ControlReply
		op    string
		out   string
	}{
		{[]string{"status"}, sessiond.ControlReply{Status: st}, "status ",
			"machine   pc-1 (12D3K) in client acme\nbroker    12D3B, bridge up\ncheck-in  none yet\n" +
				"network   metered, policy on metered connections: normal\n" +
				"sessions  1 live (UDP port 7000)\n          01234567  tina  interactive  direct-quic  since 2026-03-01T12:00:00Z\n"},
		{[]string{"status"}, sessiond.ControlReply{Status: quiet}, "status ",
			"machine   pc-1 (12D3K) in client acme\nbroker    , bridge down\ncheck-in  none yet\n" +
				"away      quiet: on a metered connection (the bridge stays down)\n" +
				"network   metered, policy on metered connections: quiet; UDP blocked since 2026-03-01T12:00:00Z\n" +
				"sessions  0 live (UDP port 0)\n"},
		{[]string{"checkin"}, sessiond.ControlReply{Seq: 7, Reason: wire.ReasonDemand}, "checkin ",
			"checked in: seq 7, reason demand\n"},
		{[]string{"pause-input"}, sessiond.ControlReply{Status: st}, "pause-input ",
			"remote input paused on pc-1: technicians see output, their input is refused\n"},
		{[]string{"requests"}, sessiond.ControlReply{}, "requests ", "no session requests are waiting\n"},
		{[]string{"requests", "--json"}, sessiond.ControlReply{}, "requests ", "[]\n"},
		{[]string{"approve", "--all"}, sessiond.ControlReply{Requests: []wire.ConsentRequest{req}}, "approve ",
			"approved 01234567: read-only session for tina\n"},
		{[]string{"deny", "01234567"}, sessiond.ControlReply{Requests: []wire.ConsentRequest{req}}, "deny 01234567",
			"denied 01234567: read-only session for tina\n"},
	} {
		dir, ops := fakeAgent(t, tc.reply)
		args := append([]string{tc.args[0], "--state", dir}, tc.args[1:]...)
		out, _, err := run(t, args...)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if op := <-ops; op != tc.op {
			t.Errorf("%v: sent %q, want %q", tc.args, op, tc.op)
		}
		if out != tc.out {
			t.Errorf("%v: printed\n%s\nwant\n%s", tc.args, out, tc.out)
		}
	}
}
