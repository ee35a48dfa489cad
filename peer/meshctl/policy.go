package meshctl

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Policy verbs: the fleet's metered-connection policy for agents, by
// client or by machine (a machine's own wins over its client's). Agents
// learn it from any broker at their next presence hello or check-in; an
// agent with none set follows its own flags (sessiond run --on-metered).

// policySet sets a client's or a machine's policy (admin).
func (e *env) policySet(args []string) error {
	a, asJSON, err := policySetArgs(args)
	if err != nil {
		return err
	}
	var p wire.Policy
	if err := e.do(wire.OpPolicySet, a, &p); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.out, p)
	}
	fmt.Fprintf(e.out, "metered policy of %s: %s\n# its agents learn it at their next bridge or check-in\n", p.Name(), describePolicy(p.AgentPolicy))
	return nil
}

// policySetArgs parses policy set's command line.
func policySetArgs(args []string) (wire.PolicyArgs, bool, error) {
	fs := flag.NewFlagSet("policy set", flag.ContinueOnError)
	onMetered := fs.String("on-metered", "", "quiet (close the bridge and check in seldom while metered) or normal")
	interval := fs.Duration("quiet-interval", 0, "the quiet check-in cadence, 15m to 168h (default: the agent's own, 6h)")
	client := fs.String("client", "", "every machine of this `client`")
	asJSON := fs.Bool("json", false, "print JSON")
	var a wire.PolicyArgs
	sc, err := policyScope(fs, args, client)
	if err != nil {
		return a, false, err
	}
	a.PolicyScope = sc
	switch *onMetered {
	case wire.MeteredQuiet, wire.MeteredNormal:
		a.OnMetered = *onMetered
	case "":
		return a, false, fmt.Errorf("%w: policy set needs --on-metered quiet or --on-metered normal", ErrUsage)
	default:
		return a, false, fmt.Errorf("%w: --on-metered %q: want quiet or normal", ErrUsage, *onMetered)
	}
	switch d := *interval; {
	case d == 0:
	case a.OnMetered != wire.MeteredQuiet:
		return a, false, fmt.Errorf("%w: --quiet-interval applies only with --on-metered quiet", ErrUsage)
	case d%time.Second != 0 || d < wire.MinQuietCheckInSec*time.Second || d > wire.MaxQuietCheckInSec*time.Second:
		return a, false, fmt.Errorf("%w: --quiet-interval %s: want whole seconds from 15m to 168h (7 days)", ErrUsage, d)
	default:
		a.QuietCheckInSec = int64(d / time.Second)
	}
	if err := a.Validate(); err != nil {
		return a, false, fmt.Errorf("%w: policy set: %v", ErrUsage, err)
	}
	return a, *asJSON, nil
}

// policyClear clears a client's or a machine's policy (admin).
func (e *env) policyClear(args []string) error {
	sc, asJSON, err := policyClearArgs(args)
	if err != nil {
		return err
	}
	var p wire.Policy
	if err := e.do(wire.OpPolicyClear, sc, &p); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.out, p)
	}
	then := "its machines follow their own policies, else their agents' own flags"
	if p.MachineID != "" {
		then = "it follows its client's policy, else its agent's own flags"
	}
	fmt.Fprintf(e.out, "cleared the metered policy of %s (was %s); %s\n", p.Name(), describePolicy(p.AgentPolicy), then)
	return nil
}

// policyClearArgs parses policy clear's command line.
func policyClearArgs(args []string) (wire.PolicyScope, bool, error) {
	fs := flag.NewFlagSet("policy clear", flag.ContinueOnError)
	client := fs.String("client", "", "the policy of this `client`")
	asJSON := fs.Bool("json", false, "print JSON")
	sc, err := policyScope(fs, args, client)
	return sc, *asJSON, err
}

// policyScope parses fs's flags around at most one positional MACHINE,
// and returns the scope: the client of --client, or the machine.
func policyScope(fs *flag.FlagSet, args []string, client *string) (wire.PolicyScope, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return wire.PolicyScope{}, fmt.Errorf("%w: %s: %v", ErrUsage, fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	var sc wire.PolicyScope
	switch {
	case *client != "" && len(pos) > 0:
		return sc, fmt.Errorf("%w: %s takes --client C or MACHINE, not both", ErrUsage, fs.Name())
	case *client != "":
		sc.Client = *client
	case len(pos) != 1:
		return sc, fmt.Errorf("%w: %s takes --client C or one MACHINE", ErrUsage, fs.Name())
	default:
		sc.Machine = pos[0]
	}
	if err := sc.Validate(); err != nil {
		return sc, fmt.Errorf("%w: %s: %v", ErrUsage, fs.Name(), err)
	}
	return sc, nil
}

// policyList lists the policies set for the clients and machines the
// technician may see.
func (e *env) policyList(args []string) error {
	fs := flag.NewFlagSet("policy list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var ps []wire.Policy
	if err := e.do(wire.OpPolicyList, nil, &ps); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, nonNil(ps))
	}
	return printPolicies(e.out, ps, time.Now())
}

// printPolicies is policy list's table.
func printPolicies(w io.Writer, ps []wire.Policy, now time.Time) error {
	if len(ps) == 0 {
		_, err := fmt.Fprintln(w, "no metered policy is set: every agent follows its own flags (sessiond run --on-metered)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APPLIES TO\tON METERED\tQUIET CHECK-IN\tSET BY\tSET")
	for _, p := range ps {
		cadence := "-"
		if p.OnMetered == wire.MeteredQuiet {
			cadence = "agent's own"
			if p.QuietCheckInSec > 0 {
				cadence = "every " + shortDuration(time.Duration(p.QuietCheckInSec)*time.Second)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name(), p.OnMetered, cadence, p.SetBy, ago(&p.SetAt, now))
	}
	return tw.Flush()
}

// describePolicy says what a policy does.
func describePolicy(p wire.AgentPolicy) string {
	switch {
	case p.OnMetered == wire.MeteredNormal:
		return "normal on metered connections"
	case p.OnMetered == wire.MeteredQuiet && p.QuietCheckInSec > 0:
		return "quiet on metered connections, checking in every " + shortDuration(time.Duration(p.QuietCheckInSec)*time.Second)
	case p.OnMetered == wire.MeteredQuiet:
		return "quiet on metered connections, checking in at the agent's own quiet interval"
	}
	return "none"
}

// shortDuration prints d without its zero tail: 6h, 1h30m, 15m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
