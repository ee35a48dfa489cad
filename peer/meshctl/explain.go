package meshctl

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// waitCmd returns when a machine is reachable: meshctl wait MACHINE
// --online [--timeout D].
func (e *env) waitCmd(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	online := fs.Bool("online", false, "wait until the machine is reachable (the only condition so far)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long (at most 1h)")
	pos, err := parse(fs, args, "MACHINE")
	if err != nil {
		return err
	}
	if !*online {
		return fmt.Errorf("%w: wait needs --online", ErrUsage)
	}
	c, err := e.waitOnline(pos[0], *timeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "%s/%s is online (broker %s, since %s)\n", c.Client, c.Name, c.Reachability.Broker,
		c.Reachability.Since.Local().Format(time.TimeOnly))
	return nil
}

// waitOnline asks the broker to answer once the machine is reachable.
func (e *env) waitOnline(machine string, timeout time.Duration) (wire.Card, error) {
	var c wire.Card
	if timeout < time.Second || timeout > time.Hour {
		return c, fmt.Errorf("%w: --timeout must be between 1s and 1h", ErrUsage)
	}
	cl, err := e.connect()
	if err != nil {
		return c, err
	}
	ctx, cancel := context.WithTimeout(e.ctx, timeout+30*time.Second)
	defer cancel()
	err = cl.Do(ctx, wire.OpWaitOnline, wire.WaitArgs{Machine: machine, TimeoutSec: int(timeout.Seconds())}, &c)
	return c, err
}

// explain gives the two-part answer a technician gives a client: what the
// stored state says and what is likely wrong, then whether we can connect
// live now, in plain sentences built from the card.
func (e *env) explain(args []string) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	pos, err := parse(fs, args, "MACHINE")
	if err != nil {
		return err
	}
	var c wire.Card
	if err := e.do(wire.OpShow, wire.ShowArgs{Machine: pos[0]}, &c); err != nil {
		return err
	}
	writeExplanation(e.out, &c, time.Now())
	return nil
}

func writeExplanation(w io.Writer, c *wire.Card, now time.Time) {
	r := c.Readiness
	fmt.Fprintf(w, "%s/%s\n\nWhat we know (stored state):\n", c.Client, c.Name)
	if r.LastCheckIn == nil {
		fmt.Fprintf(w, "  It was enrolled %s but has never checked in, so we know nothing about it yet.\n", ago(&r.EnrolledAt, now))
	} else {
		osName := "an unknown system"
		if r.OS != nil {
			osName = r.OS.Name
		}
		fmt.Fprintf(w, "  It last checked in %s (%s): %s, agent %s.\n", ago(r.LastCheckIn, now), r.CheckInReason, osName, r.AgentVersion)
		switch n := len(r.PendingUpdates); {
		case n == 0 && r.UpdatesUnknown != "":
			fmt.Fprintf(w, "  Its pending updates are unknown: %s.\n", r.UpdatesUnknown)
		case n == 0:
			fmt.Fprintln(w, "  It reported no pending updates.")
		default:
			ids := make([]string, 0, 3)
			for _, u := range r.PendingUpdates[:min(n, 3)] {
				ids = append(ids, u.ID)
			}
			more := ""
			if n > 3 {
				more = fmt.Sprintf(" and %d more", n-3)
			}
			fmt.Fprintf(w, "  It has %d pending update(s): %s%s.\n", n, strings.Join(ids, ", "), more)
		}
	}
	switch r.State {
	case wire.StateReady:
		fmt.Fprintln(w, "  Nothing in its stored state needs attention: it is ready for work.")
	case wire.StateStale:
		fmt.Fprintln(w, "  Its last check-in is older than expected, so what we know may be out of date.")
	case wire.StateConsentRequired:
		fmt.Fprintln(w, "  Hands-on work needs the person at the machine to approve first.")
	case wire.StateDegraded:
		fmt.Fprintln(w, "  It needs attention.")
	case wire.StateIncomplete:
		fmt.Fprintln(w, "  Its stored state is incomplete.")
	}
	for _, why := range r.Reasons {
		fmt.Fprintf(w, "  - %s\n", why)
	}
	unclean := uncleanSentence(r.LastUncleanEnd, now)
	if unclean != "" {
		fmt.Fprintf(w, "  %s\n", unclean)
	}
	fmt.Fprintln(w, "\nCan we connect live now (reachability):")
	explainReach(w, c.Reachability, unclean != "", now)
	if s := c.Session; s != nil {
		fmt.Fprintln(w, "\nSession status:")
		switch s.State {
		case "waiting-for-approval":
			fmt.Fprintf(w, "  A session is waiting for the person at the machine to approve it.\n")
		default:
			fmt.Fprintf(w, "  %d session(s) open (%s), %s, path %s.\n", s.Sessions, strings.Join(s.Technicians, ", "), s.Mode, s.Path)
		}
		if s.InputPaused {
			fmt.Fprintln(w, "  The person at the machine has paused remote input.")
		}
		if s.Busy {
			fmt.Fprintln(w, "  The machine is busy: commands will be slow.")
		}
		if s.UserPresent {
			fmt.Fprintln(w, "  Someone is logged in at the machine.")
		}
	}
}

// explainReach writes whether we can connect now: the bridge while
// online (and what the agent said of its time away), why the machine is
// away while offline. uncleanSaid reports that the stored state already
// told of an unclean end.
func explainReach(w io.Writer, rc wire.Reachability, uncleanSaid bool, now time.Time) {
	if !rc.Online {
		if why := awaySentence(rc, now); why != "" {
			fmt.Fprintf(w, "  No: %s\n", why)
			fmt.Fprintln(w, "  That is a network signal, not a verdict: the stored state above still holds.")
		} else {
			fmt.Fprintf(w, "  No: it was last seen %s. That is a network signal, not a verdict: the stored state above still holds.\n", ago(rc.LastSeen, now))
		}
		fmt.Fprintln(w, "  `meshctl wait --online` tells you when it is back.")
		return
	}
	since := ""
	if rc.Since != nil {
		since = " since " + clockAt(*rc.Since, now)
	}
	fmt.Fprintf(w, "  Yes: its agent is connected to broker %s over %s%s.\n", rc.Broker, rc.Transport, since)
	if r := rc.Returned; r != nil && !(r.What == wire.ReturnedUnclean && uncleanSaid) {
		fmt.Fprintf(w, "  When it came back it said: %s.\n", returnedWords(r, now))
	}
	switch {
	case rc.UDPBlockedSince != nil:
		fmt.Fprintf(w, "  Its network has blocked UDP since %s, so sessions will go through the broker's relay.\n", clockAt(*rc.UDPBlockedSince, now))
	case rc.Transport == "tcp" || rc.Transport == "websocket":
		fmt.Fprintln(w, "  Its network blocks UDP, so sessions will go through the broker's relay.")
	}
}

// alertsCmd lists open alerts: readiness alerts (stored state) first,
// then reachability alerts (the live overlay).
func (e *env) alertsCmd(args []string) error {
	fs := flag.NewFlagSet("alerts", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var as []wire.Alert
	if err := e.do(wire.OpAlerts, nil, &as); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, nonNil(as))
	}
	if len(as) == 0 {
		fmt.Fprintln(e.out, "no open alerts")
		return nil
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tCADENCE\tKIND\tSINCE\tDETAIL")
	now := time.Now()
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Machine, a.Cadence, a.Kind, ago(&a.Since, now), a.Detail)
	}
	return tw.Flush()
}
