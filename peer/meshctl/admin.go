package meshctl

import (
	"cmp"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

func (e *env) login(args []string) error {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	broker := fs.String("broker", "", "broker.json path or multiaddr (default: the address in the credential)")
	cred := fs.String("credential", "", "admin.credential file, or a login token from technicians add")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *cred == "" {
		return fmt.Errorf("%w: login needs --credential", ErrUsage)
	}
	c, err := tech.Login(e.ctx, e.home, *broker, *cred)
	if err != nil {
		return err
	}
	e.client = c
	t := c.Config.Technician
	fmt.Fprintf(e.out, "logged in as %s (%s) to broker %s; state in %s\n", t.Name, role(t), c.Config.Broker.PeerID, e.home)
	return nil
}

func role(t wire.Technician) string {
	if t.Admin {
		return "admin"
	}
	return "clients " + strings.Join(t.Clients, ",")
}

func (e *env) whoami(args []string) error {
	fs := flag.NewFlagSet("whoami", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var t wire.Technician
	if err := e.do(wire.OpWhoAmI, nil, &t); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, t)
	}
	fmt.Fprintf(e.out, "%s (%s), modes %s\n", t.Name, role(t), strings.Join(t.Modes, ","))
	return nil
}

// consoleCmd prints a one-time link that signs this technician in to the
// web console of the broker meshctl is logged in to.
func (e *env) consoleCmd(args []string) error {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var l wire.ConsoleLogin
	if err := e.do(wire.OpConsoleLogin, nil, &l); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, l)
	}
	fmt.Fprintf(e.out, "open this link within %s (it works once):\n  %s\n", time.Until(l.Expires).Round(time.Second), l.URL)
	return nil
}

func (e *env) clientsCreate(args []string) error {
	fs := flag.NewFlagSet("clients create", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	var c wire.Client
	if err := e.do(wire.OpClientsCreate, wire.ClientArgs{Name: pos[0]}, &c); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, c)
	}
	fmt.Fprintf(e.out, "created client %s\n", c.Name)
	return nil
}

func (e *env) clientsList(args []string) error {
	fs := flag.NewFlagSet("clients ls", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var cs []wire.Client
	if err := e.do(wire.OpClientsList, nil, &cs); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, nonNil(cs))
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tMACHINES\tCREATED")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", c.Name, c.Machines, c.CreatedAt.Format(time.DateOnly))
	}
	return tw.Flush()
}

func (e *env) tokensCreate(args []string) error {
	fs := flag.NewFlagSet("tokens create", flag.ContinueOnError)
	client := fs.String("client", "", "client the enrolled machines join")
	uses := fs.Int("uses", 1, "how many machines may enrol with it")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long it is valid")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *client == "" {
		return fmt.Errorf("%w: tokens create needs --client", ErrUsage)
	}
	if *uses < 1 || *ttl < time.Second {
		return fmt.Errorf("%w: --uses must be at least 1 and --ttl at least 1s", ErrUsage)
	}
	var r wire.TokenResult
	args2 := wire.TokenArgs{Client: *client, Uses: *uses, TTLSec: int64(*ttl / time.Second)}
	if err := e.do(wire.OpTokensCreate, args2, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, r)
	}
	fmt.Fprintf(e.out, "%s\n", r.Token)
	fmt.Fprintf(e.out, "# client %s, %d use(s), expires %s\n# on the machine: sessiond enroll --token TOKEN --name NAME --state DIR\n",
		r.Client, r.Uses, r.ExpiresAt.Format(time.RFC3339))
	return nil
}

func (e *env) techniciansAdd(args []string) error {
	fs := flag.NewFlagSet("technicians add", flag.ContinueOnError)
	clients := fs.String("clients", "", "comma-separated clients the technician may see")
	modes := fs.String("modes", wire.ModeReadOnly, "comma-separated session modes: read-only, interactive, elevated")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	a := wire.TechnicianArgs{Name: pos[0], Clients: splitList(*clients), Modes: splitList(*modes)}
	var r wire.TechnicianResult
	if err := e.do(wire.OpTechniciansAdd, a, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, r)
	}
	fmt.Fprintf(e.out, "added technician %s (clients %s; modes %s)\none-time login token, valid until %s:\n%s\n# meshctl login --credential TOKEN\n",
		r.Technician.Name, strings.Join(r.Technician.Clients, ","), strings.Join(r.Technician.Modes, ","),
		r.ExpiresAt.Format(time.RFC3339), r.LoginToken)
	return nil
}

func (e *env) techniciansList(args []string) error {
	fs := flag.NewFlagSet("technicians ls", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var ts []wire.Technician
	if err := e.do(wire.OpTechniciansList, nil, &ts); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, nonNil(ts))
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TECHNICIAN\tROLE\tMODES\tKEYS\tSTATE")
	for _, t := range ts {
		state := "active"
		if t.Disabled {
			state = "disabled by " + t.DisabledBy
			if t.DisabledAt != nil {
				state += " at " + t.DisabledAt.Local().Format(time.DateTime)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", t.Name, role(t), strings.Join(t.Modes, ","), len(t.Keys), state)
	}
	return tw.Flush()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (e *env) brokers(args []string) error {
	fs := flag.NewFlagSet("brokers", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var ms []wire.BrokerMember
	if err := e.do(wire.OpBrokers, nil, &ms); err != nil {
		return err
	}
	e.client.RememberBrokers(ms) // keep the list for failover
	if *asJSON {
		return printJSON(e.out, nonNil(ms))
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BROKER\tREGION\tSTATE\tVERSION\tAGENTS\tTECHNICIANS\tPEER ID")
	for _, m := range ms {
		name := m.Name
		if m.Self {
			name += " (this one)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", name, m.Region, m.State, cmp.Or(m.Version, "-"), m.Agents, m.Technicians, m.PeerID)
	}
	return tw.Flush()
}
