package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond"
)

// The commands below talk to the agent running on a state directory
// through its control channel (see sessiond.Control): a Unix socket, or a
// named pipe on Windows. --state defaults to where sessiond install puts
// the agent, so the person at an installed machine types only the
// command.

const stateUsage = "state `dir`ectory of the running agent"

// controlCmd is a command that talks to the agent running on --state.
type controlCmd struct {
	name string
	fs   *flag.FlagSet
	dir  *string
}

// control makes a control command's flag set, with --state; the command
// adds its own flags to fs before parse.
func (e *env) control(name string) *controlCmd {
	fs := e.flags(name)
	return &controlCmd{name: name, fs: fs, dir: fs.String("state", sessiond.DefaultStateDir(runtime.GOOS), stateUsage)}
}

// parse parses args and requires --state.
func (c *controlCmd) parse(args []string) error {
	if err := parse(c.fs, args); err != nil {
		return err
	}
	if *c.dir == "" {
		return fmt.Errorf("%s needs --state", c.name)
	}
	return nil
}

// checkin asks the running agent for a check-in and waits for it; a
// check-in may wait for the bridge, hence the long timeout.
func (e *env) checkin(name string, args []string) error {
	c := e.control(name)
	if err := c.parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
	defer cancel()
	seq, reason, _, err := sessiond.Control(ctx, *c.dir, "checkin")
	if err != nil {
		return fmt.Errorf("check-in: %w", err)
	}
	fmt.Fprintf(e.stdout, "checked in: seq %d, reason %s\n", seq, reason)
	return nil
}

// status prints the running agent's own view.
func (e *env) status(name string, args []string) error {
	c := e.control(name)
	asJSON := c.fs.Bool("json", false, "print JSON")
	if err := c.parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	_, _, st, err := sessiond.Control(ctx, *c.dir, "status")
	if err != nil {
		return err
	}
	if *asJSON {
		return e.printJSON(st)
	}
	e.printStatus(st)
	return nil
}

func (e *env) printStatus(st *sessiond.Status) {
	bridge := "down"
	if st.BridgeUp {
		bridge = "up"
	}
	fmt.Fprintf(e.stdout, "machine   %s (%s) in client %s\nbroker    %s, bridge %s\n", st.Name, st.MachineID, st.Client, st.Broker, bridge)
	if st.LastCheckIn != nil {
		fmt.Fprintf(e.stdout, "check-in  seq %d, %s, %s\n", st.LastCheckIn.Seq, st.LastCheckIn.Reason, st.LastCheckIn.At.Format(time.RFC3339))
	} else {
		fmt.Fprintln(e.stdout, "check-in  none yet")
	}
	if st.Away != nil {
		fmt.Fprintf(e.stdout, "away      %s: %s (the bridge stays down)\n", st.Away.Reason, st.Away.Detail)
	}
	metered := "not metered"
	if st.Metered {
		metered = "metered"
	}
	fmt.Fprintf(e.stdout, "network   %s, policy on metered connections: %s", metered, st.OnMetered)
	if st.UDPBlockedSince != nil {
		fmt.Fprintf(e.stdout, "; UDP blocked since %s", st.UDPBlockedSince.Format(time.RFC3339))
	}
	fmt.Fprintln(e.stdout)
	fmt.Fprintf(e.stdout, "sessions  %d live (UDP port %d)\n", len(st.Sessions), st.SessionPort)
	for _, s := range st.Sessions {
		fmt.Fprintf(e.stdout, "          %s  %s  %s  %s  since %s\n", s.Session[:min(len(s.Session), 8)], s.Technician, s.Mode, s.Path, s.Started.Format(time.RFC3339))
	}
	e.printUpdateStatus(st)
}

// pauseInput pauses (pause-input) or resumes (resume-input) remote input
// on the running agent.
func (e *env) pauseInput(name string, args []string) error {
	c := e.control(name)
	if err := c.parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	_, _, st, err := sessiond.Control(ctx, *c.dir, name)
	if err != nil {
		return err
	}
	if st.InputPaused {
		fmt.Fprintf(e.stdout, "remote input paused on %s: technicians see output, their input is refused\n", st.Name)
	} else {
		fmt.Fprintf(e.stdout, "remote input resumed on %s\n", st.Name)
	}
	return nil
}

// requests lists the session requests waiting for approval.
func (e *env) requests(name string, args []string) error {
	c := e.control(name)
	asJSON := c.fs.Bool("json", false, "print JSON")
	if err := c.parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	r, err := sessiond.ControlArg(ctx, *c.dir, "requests", "")
	if err != nil {
		return err
	}
	if *asJSON {
		if r.Requests == nil {
			r.Requests = []wire.ConsentRequest{}
		}
		return e.printJSON(r.Requests)
	}
	if len(r.Requests) == 0 {
		fmt.Fprintln(e.stdout, "no session requests are waiting")
		return nil
	}
	for _, q := range r.Requests {
		fmt.Fprintf(e.stdout, "%s  %s asks for a %s session (asked %s ago)\n", q.ID, q.Technician, q.Mode, time.Since(q.Asked).Round(time.Second))
	}
	fmt.Fprintln(e.stdout, "approve with: sessiond approve --state DIR REQUEST   (or --all); refuse with: sessiond deny --state DIR REQUEST")
	return nil
}

// answer approves (approve) or denies (deny) session requests.
func (e *env) answer(name string, args []string) error {
	c := e.control(name)
	all := c.fs.Bool("all", false, "every waiting request (approve only)")
	if err := c.parse(args); err != nil {
		return err
	}
	id := c.fs.Arg(0)
	switch {
	case id == "" && !(*all && name == "approve"):
		return fmt.Errorf("%s needs a request ID (see sessiond requests)", name)
	case id != "" && *all:
		return fmt.Errorf("%s takes a request ID or --all, not both", name)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	r, err := sessiond.ControlArg(ctx, *c.dir, name, id)
	if err != nil {
		return err
	}
	verb := "approved"
	if name == "deny" {
		verb = "denied"
	}
	for _, q := range r.Requests {
		fmt.Fprintf(e.stdout, "%s %s: %s session for %s\n", verb, q.ID, q.Mode, q.Technician)
	}
	return nil
}

// printJSON writes v as indented JSON.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
