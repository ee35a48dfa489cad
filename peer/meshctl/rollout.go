package meshctl

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Rollout verbs: take a published release to the fleet, canary wave
// first (see the broker's package rollout).

// rolloutStart starts a rollout (admin).
func (e *env) rolloutStart(args []string) error {
	a, asJSON, err := rolloutArgs(args)
	if err != nil {
		return err
	}
	var r wire.Rollout
	if err := e.do(wire.OpRolloutStart, a, &r); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.out, r)
	}
	total := 0
	for _, n := range r.Counts {
		total += n
	}
	fmt.Fprintf(e.out, "rollout %s: %s to %d machines (canary %d%%, health window %s, max %d at once, %s)\n",
		r.ID, r.Version, total, r.CanaryPct, time.Duration(r.HealthWindowSec)*time.Second, r.MaxParallel, pauseWords(r.FailPct))
	fmt.Fprintf(e.out, "follow it: meshctl rollout status %s\n", r.ID)
	return nil
}

// rolloutArgs parses rollout start's command line.
func rolloutArgs(args []string) (wire.RolloutArgs, bool, error) {
	fs := flag.NewFlagSet("rollout start", flag.ContinueOnError)
	var a wire.RolloutArgs
	fs.Func("client", "every machine of this `client` (repeat for more)", func(s string) error { a.Clients = append(a.Clients, s); return nil })
	fs.BoolVar(&a.All, "all", false, "every machine of the fleet")
	canary := fs.String("canary", "25%", "share of the machines updated first, as a canary wave (0% for none)")
	window := fs.Duration("health-window", 15*time.Minute, "how long an updated agent has to check in on the new version")
	fs.IntVar(&a.MaxParallel, "max-parallel", 50, "machines updating at once")
	fail := fs.String("fail", "10%", "pause once more than this share of wave 1's started machines failed (0% for the first failure)")
	fs.BoolVar(&a.Rollback, "rollback", false, "allow a release older than the agents: an explicit rollback")
	fs.BoolVar(&a.RequiresConsent, "requires-consent", false, "ask the person at each machine first, whatever its policy")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "VERSION")
	if err != nil {
		return a, false, err
	}
	a.Version, a.HealthWindowSec = pos[0], int(window.Seconds())
	if a.CanaryPct, err = percent("canary", *canary); err != nil {
		return a, false, err
	}
	// The threshold is always sent, its default too: the broker reads an
	// absent one as its own default, and 0 as 0.
	failPct, err := percent("fail", *fail)
	if err != nil {
		return a, false, err
	}
	a.FailPct = &failPct
	if err := a.Validate(); err != nil {
		return a, false, fmt.Errorf("%w: rollout start: %v", ErrUsage, err)
	}
	return a, *asJSON, nil
}

// percent reads "25%" or "25" as 25.
func percent(flag, s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	if err != nil || n < 0 || n > 100 {
		return 0, fmt.Errorf("%w: --%s %q: want a share from 0%% to 100%%", ErrUsage, flag, s)
	}
	return n, nil
}

// pauseWords says when a rollout with threshold failPct pauses in wave 1.
func pauseWords(failPct int) string {
	if failPct == 0 {
		return "pause at the first failure"
	}
	return fmt.Sprintf("pause above %d%% failed", failPct)
}

// rolloutList lists the rollouts, newest first.
func (e *env) rolloutList(args []string) error {
	fs := flag.NewFlagSet("rollout ls", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var rs []wire.Rollout
	if err := e.do(wire.OpRolloutList, nil, &rs); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, nonNil(rs))
	}
	return printRollouts(e.out, rs, time.Now())
}

// printRollouts is rollout ls's table.
func printRollouts(w io.Writer, rs []wire.Rollout, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLLOUT\tVERSION\tSTATE\tMACHINES\tUPDATED\tFAILED\tBY\tSTARTED\tWHY")
	for _, r := range rs {
		total := 0
		for _, n := range r.Counts {
			total += n
		}
		failed := r.Counts[wire.StepFailed] + r.Counts[wire.StepRolledBack]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", r.ID, r.Version, r.State, total, r.Counts[wire.StepUpdated],
			failed, r.CreatedBy, ago(&r.CreatedAt, now), r.PausedReason)
	}
	return tw.Flush()
}

// rolloutStatus shows one rollout: its counts by step and each
// machine's step.
func (e *env) rolloutStatus(args []string) error {
	fs := flag.NewFlagSet("rollout status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "ROLLOUT")
	if err != nil {
		return err
	}
	var r wire.Rollout
	if err := e.do(wire.OpRolloutStatus, wire.RolloutIDArgs{ID: pos[0]}, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, r)
	}
	return printRolloutStatus(e.out, &r)
}

// rolloutSteps are the steps in the order status prints their counts.
var rolloutSteps = []string{wire.StepWaiting, wire.StepQueued, wire.StepInstalling, wire.StepUpdated,
	wire.StepRolledBack, wire.StepFailed, wire.StepSkipped, wire.StepCancelled}

// printRolloutStatus is rollout status's text.
func printRolloutStatus(w io.Writer, r *wire.Rollout) error {
	fmt.Fprintf(w, "rollout %s: %s, %s (started by %s at %s)\n", r.ID, r.Version, r.State, r.CreatedBy,
		r.CreatedAt.Local().Format(time.DateTime))
	fmt.Fprintf(w, "plan: canary %d%%, health window %s, max %d at once, %s\n", r.CanaryPct,
		time.Duration(r.HealthWindowSec)*time.Second, r.MaxParallel, pauseWords(r.FailPct))
	if r.PausedReason != "" {
		fmt.Fprintf(w, "why: %s\n", r.PausedReason)
	}
	var counts []string
	for _, s := range rolloutSteps {
		if n := r.Counts[s]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, s))
		}
	}
	if len(counts) == 0 {
		counts = []string{"no machines you can see"}
	}
	fmt.Fprintln(w, strings.Join(counts, ", "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tWAVE\tSTEP\tFROM\tJOB\tDETAIL")
	for _, m := range r.Machines {
		wave, job := "canary", "-"
		if m.Wave == 1 {
			wave = "1"
		}
		if len(m.Job) >= 12 {
			job = m.Job[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Machine, wave, m.Step, dash(m.From), job, m.Detail)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rolloutSet runs rollout pause, resume or abort.
func rolloutSet(verb, op string) func(*env, []string) error {
	return func(e *env, args []string) error {
		fs := flag.NewFlagSet("rollout "+verb, flag.ContinueOnError)
		pos, err := parse(fs, args, "ROLLOUT")
		if err != nil {
			return err
		}
		var r wire.Rollout
		if err := e.do(op, wire.RolloutIDArgs{ID: pos[0]}, &r); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "rollout %s (%s): %s\n", r.ID, r.Version, r.State)
		return nil
	}
}
