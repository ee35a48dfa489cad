package meshctl

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func (e *env) machines(args []string) error {
	fs := flag.NewFlagSet("machines", flag.ContinueOnError)
	var a wire.MachinesArgs
	fs.StringVar(&a.Client, "client", "", "only this client")
	fs.StringVar(&a.Readiness, "readiness", "", "only this readiness state")
	online := fs.Bool("online", false, "only machines online now")
	offline := fs.Bool("offline", false, "only machines offline now")
	fs.StringVar(&a.PendingUpdate, "pending-update", "", "only machines with this pending update (package name or KB)")
	fs.StringVar(&a.For, "for", "", "only machines fit for: quick-fix (ready, reachable, no approval pending, not busy) or maintenance (reachable, nobody logged in)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *online && *offline:
		return fmt.Errorf("%w: --online and --offline exclude each other", ErrUsage)
	case *online:
		a.Online = online
	case *offline:
		f := false
		a.Online = &f
	}
	var cards []wire.Card
	if err := e.do(wire.OpMachines, a, &cards); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, nonNil(cards))
	}
	return printTable(e.out, cards, time.Now())
}

// printTable prints the queue: readiness state and reachability in their
// own columns, the dot beside a word, never instead of it.
func printTable(w io.Writer, cards []wire.Card, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tMACHINE\tREADINESS\tREACHABILITY\tLAST CHECK-IN\tAGENT\tOS\tUPDATES\tWHY")
	for _, c := range cards {
		r := c.Readiness
		agent := r.AgentVersion
		if r.AgentBehind {
			agent += " (behind)"
		}
		osName := "-"
		if r.OS != nil {
			osName = r.OS.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Client, c.Name, r.State, reach(c.Reachability, now),
			ago(r.LastCheckIn, now), orDash(agent), osName, updatesCount(r), strings.Join(r.Reasons, "; "))
	}
	if len(cards) == 0 {
		fmt.Fprintln(tw, "(no machines)")
	}
	return tw.Flush()
}

func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	d := now.Sub(*t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (e *env) show(args []string) error {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "MACHINE")
	if err != nil {
		return err
	}
	var c wire.Card
	if err := e.do(wire.OpShow, wire.ShowArgs{Machine: pos[0]}, &c); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, c)
	}
	printCard(e.out, &c, time.Now())
	return nil
}

func printCard(w io.Writer, c *wire.Card, now time.Time) {
	r := c.Readiness
	fmt.Fprintf(w, "%s/%s  (%s)\n\n", c.Client, c.Name, c.ID)
	fmt.Fprintf(w, "READINESS     %s\n", r.State)
	for _, why := range r.Reasons {
		fmt.Fprintf(w, "  - %s\n", why)
	}
	fmt.Fprintf(w, "  last check-in  %s (%s, seq %d)\n", ago(r.LastCheckIn, now), orDash(r.CheckInReason), r.CheckInSeq)
	if r.OS != nil {
		fmt.Fprintf(w, "  os             %s (%s %s, kernel %s)\n", r.OS.Name, r.OS.Family, r.OS.Version, orDash(r.OS.Kernel))
	}
	agent := orDash(r.AgentVersion)
	if r.AgentBehind {
		agent += ", behind " + r.NewestAgentVersion
	}
	fmt.Fprintf(w, "  agent          %s\n", agent)
	fmt.Fprintf(w, "  approval       %s\n", approval(r.Approval, now))
	if e := r.LastUncleanEnd; e != nil {
		fmt.Fprintf(w, "  unclean end    %s%s\n", clockAt(e.At, now), paren(e.Detail))
	}
	if r.UpdatesUnknown != "" {
		fmt.Fprintf(w, "  pending        unknown: %s\n", r.UpdatesUnknown)
	} else {
		fmt.Fprintf(w, "  pending        %d update(s)\n", len(r.PendingUpdates))
	}
	for i, u := range r.PendingUpdates {
		if i == 10 {
			fmt.Fprintf(w, "                 … %d more\n", len(r.PendingUpdates)-10)
			break
		}
		sec := ""
		switch {
		case u.Severity != "":
			sec = " [" + strings.ToLower(u.Severity) + "]"
		case u.Security:
			sec = " [security]"
		}
		title := ""
		if u.Title != "" {
			title = " " + u.Title
		}
		fmt.Fprintf(w, "                 %s %s%s%s, first seen %s\n", u.ID, u.Version, sec, title, ago(u.FirstSeen, now))
	}
	fmt.Fprintf(w, "\nREACHABILITY  %s\n", reach(c.Reachability, now))
	printReach(w, c.Reachability, now)
	fmt.Fprintf(w, "\nSESSION       %s\n", sessionLine(c.Session))
	if s := c.Snapshot; s != nil {
		fmt.Fprintf(w, "\nSNAPSHOT      host %s, %d packages, collected %s\n", s.Hostname, len(s.Packages), ago(&s.CollectedAt, now))
		for _, ce := range s.CollectorErrs {
			fmt.Fprintf(w, "  collector %s failed: %s\n", ce.Collector, ce.Error)
		}
	}
	if len(c.History) > 0 {
		fmt.Fprintf(w, "\nHISTORY       (newest first)\n")
		for i, h := range c.History {
			if i == 10 {
				fmt.Fprintf(w, "  … %d more\n", len(c.History)-10)
				break
			}
			fmt.Fprintf(w, "  seq %-5d %s  %-9s agent %s, %d pending%s\n", h.Seq, h.At.Local().Format(time.DateTime), h.Reason, h.AgentVersion, h.PendingUpdates, paren(h.Detail))
		}
	}
}

// printReach prints the reachability layer's details under its heading:
// the bridge while online, why and since when while away.
func printReach(w io.Writer, rr wire.Reachability, now time.Time) {
	if rr.Online {
		fmt.Fprintf(w, "  since          %s via broker %s over %s\n", ago(rr.Since, now), rr.Broker, orDash(rr.Transport))
		if rr.UDPBlockedSince != nil {
			fmt.Fprintf(w, "  UDP blocked    since %s: sessions go through the broker's relay\n", clockAt(*rr.UDPBlockedSince, now))
		}
		if rr.Load1 != nil {
			fmt.Fprintf(w, "  load           %.2f per core\n", *rr.Load1)
		}
		if rr.UserPresent != nil {
			fmt.Fprintf(w, "  user present   %v\n", *rr.UserPresent)
		}
		if rr.Returned != nil {
			fmt.Fprintf(w, "  returned       %s\n", returnedWords(rr.Returned, now))
		}
		if rr.Detail != "" {
			fmt.Fprintf(w, "  detail         %s\n", rr.Detail)
		}
		return
	}
	if rr.OfflineReason == "" {
		return
	}
	if at := awaySince(rr); at != nil {
		fmt.Fprintf(w, "  away since     %s (%s)\n", clockAt(*at, now), ago(at, now))
	}
	if rr.Detail != "" {
		fmt.Fprintf(w, "  detail         %s\n", rr.Detail)
	}
	if rr.ExpectedBack != nil {
		fmt.Fprintf(w, "  expected back  about %s\n", clockAt(*rr.ExpectedBack, now))
	}
}

// paren is " (s)", or nothing when s is empty.
func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func approval(a wire.Approval, now time.Time) string {
	if !a.Required {
		return "not required"
	}
	switch {
	case a.LastApprovedAt == nil:
		return "required, never given"
	case a.ExpiresAt != nil && !a.ExpiresAt.After(now):
		return "required, expired " + ago(a.ExpiresAt, now)
	}
	return "required, given " + ago(a.LastApprovedAt, now)
}

func sessionLine(s *wire.Session) string {
	if s == nil {
		return "none"
	}
	if s.Path != "" {
		return s.State + " via " + s.Path
	}
	return s.State
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// updatesCount is the UPDATES column: how many are pending, or "unknown"
// when the machine could not tell (never "0" then).
func updatesCount(r wire.Readiness) string {
	if r.UpdatesUnknown != "" && len(r.PendingUpdates) == 0 {
		return "unknown"
	}
	return strconv.Itoa(len(r.PendingUpdates))
}
