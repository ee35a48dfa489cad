package meshctl

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Offboarding verbs (admin): each ends access on every broker of the
// cluster within a replication notice, and is recorded in the audit log
// with who ran it.

func (e *env) machinesRemove(args []string) error {
	fs := flag.NewFlagSet("machines remove", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "MACHINE")
	if err != nil {
		return err
	}
	var r wire.Removal
	if err := e.do(wire.OpMachinesRemove, wire.ShowArgs{Machine: pos[0]}, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, r)
	}
	fmt.Fprintf(e.out, "removed %s/%s (%s) at %s; %d queued job(s) cancelled\n# its agent is refused from now on; its history stays in the audit log\n",
		r.Client, r.Name, r.Machine, r.At.Format(time.RFC3339), r.JobsCancelled)
	return nil
}

// technicianSet runs technicians disable, enable or remove.
func technicianSet(verb, op string) func(*env, []string) error {
	return func(e *env, args []string) error {
		fs := flag.NewFlagSet("technicians "+verb, flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "print JSON")
		pos, err := parse(fs, args, "NAME")
		if err != nil {
			return err
		}
		var r any
		if err := e.do(op, wire.NameArgs{Name: pos[0]}, &r); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.out, r)
		}
		switch verb {
		case "enable":
			fmt.Fprintf(e.out, "enabled technician %s\n", pos[0])
		default:
			fmt.Fprintf(e.out, "%sd technician %s: its bridges, console sign-ins and sessions end on every broker\n", verb, pos[0])
		}
		return nil
	}
}

func (e *env) tokensList(args []string) error {
	fs := flag.NewFlagSet("tokens ls", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var ts []wire.TokenInfo
	if err := e.do(wire.OpTokensList, nil, &ts); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, nonNil(ts))
	}
	now := time.Now()
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tCLIENT\tUSES LEFT\tSTATE\tEXPIRES\tCREATED BY")
	for _, t := range ts {
		state := "active"
		switch {
		case t.UsesLeft == 0:
			state = "used up"
		case !now.Before(t.ExpiresAt):
			state = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", t.ID, t.Client, t.UsesLeft, t.Uses, state,
			t.ExpiresAt.Local().Format(time.DateTime), t.CreatedBy)
	}
	return tw.Flush()
}

func (e *env) tokensRevoke(args []string) error {
	fs := flag.NewFlagSet("tokens revoke", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "TOKEN_ID")
	if err != nil {
		return err
	}
	var t wire.TokenInfo
	if err := e.do(wire.OpTokensRevoke, wire.NameArgs{Name: strings.ToLower(pos[0])}, &t); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, t)
	}
	fmt.Fprintf(e.out, "revoked token %s of client %s (%d of %d uses left): it enrols nobody from now on\n", t.ID, t.Client, t.UsesLeft, t.Uses)
	return nil
}

func (e *env) clientsRemove(args []string) error {
	fs := flag.NewFlagSet("clients remove", flag.ContinueOnError)
	force := fs.Bool("force", false, "also remove the client's machines and tokens")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	var r wire.ClientRemoved
	if err := e.do(wire.OpClientsRemove, wire.ClientRemoveArgs{Name: pos[0], Force: *force}, &r); err != nil {
		return err
	}
	if *asJSON {
		r.Machines = nonNil(r.Machines)
		return printJSON(e.out, r)
	}
	fmt.Fprintf(e.out, "removed client %s and %d machine(s)\n", r.Name, len(r.Machines))
	return nil
}
