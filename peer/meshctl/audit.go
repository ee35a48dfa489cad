package meshctl

import (
	"flag"
	"fmt"
	"os"
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

// history prints a machine's session and command history from its stored
// state: what happened, readable without connecting.
func (e *env) history(args []string) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "MACHINE")
	if err != nil {
		return err
	}
	var c wire.Card
	if err := e.do(wire.OpShow, wire.ShowArgs{Machine: pos[0]}, &c); err != nil {
		return err
	}
	var sessions []wire.SessionRecord
	var commands []wire.CommandRecord
	if c.Snapshot != nil {
		sessions, commands = c.Snapshot.Sessions, c.Snapshot.Commands
	}
	if *asJSON {
		return printJSON(e.out, map[string]any{"machine": c.Client + "/" + c.Name, "sessions": nonNil(sessions), "commands": nonNil(commands)})
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SESSIONS of %s/%s, as of the last check-in\n", c.Client, c.Name)
	fmt.Fprintln(tw, "START\tEND\tTECHNICIAN\tMODE\tPATH\tSESSION")
	for _, s := range sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Start.Local().Format(time.DateTime), s.End.Local().Format(time.TimeOnly),
			s.Technician, s.Mode, s.Path, s.ID)
	}
	fmt.Fprintln(tw, "\nCOMMANDS\nAT\tEXIT\tCOMMAND")
	for _, x := range commands {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", x.At.Local().Format(time.DateTime), x.ExitCode, x.Command)
	}
	return tw.Flush()
}

// transcript prints a session's terminal transcripts (asciicast v2, for
// asciinema play), or writes them to --out.
func (e *env) transcript(args []string) error {
	fs := flag.NewFlagSet("transcript", flag.ContinueOnError)
	out := fs.String("out", "", "write to this `file` (several terminals: FILE, FILE.2, …) instead of stdout")
	pos, err := parse(fs, args, "SESSION")
	if err != nil {
		return err
	}
	var ts []wire.Transcript
	if err := e.do(wire.OpTranscript, wire.TranscriptArgs{Session: pos[0]}, &ts); err != nil {
		return err
	}
	for i, t := range ts {
		if *out == "" {
			e.out.Write(t.Cast)
			continue
		}
		name := *out
		if i > 0 {
			name = fmt.Sprintf("%s.%d", *out, i+1)
		}
		if err := os.WriteFile(name, t.Cast, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "wrote %s (%s of session %s on %s): play it with asciinema play %s\n", name, t.Name, t.Session[:8], t.Machine, name)
	}
	return nil
}
