package meshctl

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// queueAdd plans work for machines whether or not they are reachable.
func (e *env) queueAdd(args []string) error {
	fs := flag.NewFlagSet("queue add", flag.ContinueOnError)
	var a wire.QueueArgs
	fs.Func("machine", "a `machine` (repeat for more)", func(s string) error { a.Machines = append(a.Machines, s); return nil })
	fs.StringVar(&a.Client, "client", "", "every machine of this client")
	fs.StringVar(&a.PendingUpdate, "pending-update", "", "every machine with this pending update (KB or package)")
	fs.StringVar(&a.Readiness, "readiness", "", "every machine in this readiness state")
	script := fs.String("script", "", "`file` to run on each machine, with --shell, or by its extension (.ps1 PowerShell, .cmd/.bat cmd, .sh sh), else the machine's default (PowerShell on Windows, sh elsewhere)")
	fs.StringVar(&a.Shell, "shell", "", "run the script with powershell, cmd or sh")
	fs.StringVar(&a.Mode, "mode", wire.ModeInteractive, "interactive or elevated")
	expires := fs.Duration("expires", 72*time.Hour, "not run after this long")
	fs.BoolVar(&a.RequiresConsent, "requires-consent", false, "ask the person at the machine first, whatever its policy")
	fs.BoolVar(&a.Strict, "strict", false, "refuse to run when the machine rebooted or its agent changed since planning (default: run and warn)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *script == "" {
		return fmt.Errorf("%w: queue add needs --script FILE", ErrUsage)
	}
	raw, err := os.ReadFile(*script)
	if err != nil {
		return err
	}
	a.Script, a.ExpiresSec = string(raw), int64(expires.Seconds())
	if a.Shell == "" {
		a.Shell = shellFor(*script)
	}
	if err := wire.ValidShell(a.Shell); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	var js []wire.Job
	if err := e.do(wire.OpQueueAdd, a, &js); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, js)
	}
	for _, j := range js {
		fmt.Fprintf(e.out, "queued %s for %s (%s, expires %s)\n", j.ID, j.Machine, j.Mode, j.Expires.Local().Format(time.DateTime))
	}
	return nil
}

func (e *env) queueList(args []string) error {
	fs := flag.NewFlagSet("queue ls", flag.ContinueOnError)
	var a wire.QueueListArgs
	fs.StringVar(&a.Machine, "machine", "", "only this machine")
	fs.StringVar(&a.State, "state", "", "only jobs in this state")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var js []wire.Job
	if err := e.do(wire.OpQueueList, a, &js); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, nonNil(js))
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tMACHINE\tSTATE\tMODE\tBY\tQUEUED\tEXIT")
	now := time.Now()
	for _, j := range js {
		exit := "-"
		if j.ExitCode != nil {
			exit = fmt.Sprint(*j.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID[:12], j.Machine, j.State, j.Mode, j.CreatedBy, ago(&j.CreatedAt, now), exit)
	}
	return tw.Flush()
}

func (e *env) queueShow(args []string) error {
	fs := flag.NewFlagSet("queue show", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "JOB")
	if err != nil {
		return err
	}
	var j wire.Job
	if err := e.do(wire.OpQueueShow, wire.JobArgs{ID: pos[0]}, &j); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, j)
	}
	fmt.Fprintf(e.out, "job %s for %s: %s (%s), queued by %s, expires %s\n", j.ID, j.Machine, j.State, j.Mode, j.CreatedBy,
		j.Expires.Local().Format(time.DateTime))
	if j.Warning != "" {
		fmt.Fprintf(e.out, "warning: %s\n", j.Warning)
	}
	if j.Error != "" {
		fmt.Fprintf(e.out, "error: %s\n", j.Error)
	}
	if j.ExitCode != nil {
		fmt.Fprintf(e.out, "exit %d on broker %s at %s\n--- output\n%s", *j.ExitCode, j.Broker, j.Finished.Local().Format(time.DateTime), j.Output)
	}
	return nil
}

func (e *env) queueCancel(args []string) error {
	fs := flag.NewFlagSet("queue cancel", flag.ContinueOnError)
	pos, err := parse(fs, args, "JOB")
	if err != nil {
		return err
	}
	var j wire.Job
	if err := e.do(wire.OpQueueCancel, wire.JobArgs{ID: pos[0]}, &j); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "cancelled %s for %s\n", j.ID, j.Machine)
	return nil
}

// shellFor is the shell a script file's extension names, or "" for the
// machine's default.
func shellFor(file string) string {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".ps1":
		return wire.ShellPowerShell
	case ".cmd", ".bat":
		return wire.ShellCmd
	case ".sh":
		return wire.ShellSh
	}
	return ""
}
