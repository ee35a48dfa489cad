package meshctl

import (
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// audit prints the broker's audit log, newest first.
func (e *env) audit(args []string) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	var a wire.AuditArgs
	fs.StringVar(&a.Machine, "machine", "", "only this machine (name or client/name)")
	fs.StringVar(&a.Session, "session", "", "only this session (ID or its first digits)")
	fs.IntVar(&a.Limit, "limit", 100, "at most this many entries")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var es []wire.AuditEntry
	if err := e.do(wire.OpAudit, a, &es); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, nonNil(es))
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tEVENT\tMACHINE\tTECHNICIAN\tMODE\tSESSION\tDETAIL")
	for _, x := range es {
		id := x.Session
		if len(id) > 8 {
			id = id[:8]
		}
		detail := x.Detail
		if x.Path != "" {
			detail = x.Path + " " + detail
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.At.Local().Format(time.DateTime), x.Event, x.Machine, x.Technician,
			x.Mode, id, detail)
	}
	return tw.Flush()
}
