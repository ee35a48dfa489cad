package wire

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Why a machine is not reachable (Reachability.OfflineReason). All of them
// are benign: a grey dot is never a health verdict, and the reason tells a
// technician which kind of grey it is.
const (
	// AwayStopped: the agent was stopped (SIGTERM, a service stop).
	AwayStopped = "stopped"
	// AwayShutdown: the machine is shutting down or rebooting.
	AwayShutdown = "shutdown"
	// AwayAsleep: the machine is suspending or hibernating.
	AwayAsleep = "asleep"
	// AwayQuiet: the machine is on a metered connection and its policy
	// says stay quiet: it checks in on a long cadence and keeps no bridge.
	AwayQuiet = "quiet"
	// AwayLost: silence with no notice (network gone, firewall, crash,
	// power). The broker sets it; an agent never says it.
	AwayLost = "lost"
)

// AwayReasons lists the reasons in the order the README documents them.
var AwayReasons = []string{AwayStopped, AwayShutdown, AwayAsleep, AwayQuiet, AwayLost}

// MaxAwayDetail bounds Leaving.Detail and Returned.Detail, in bytes: a
// line for the card, not a log.
const MaxAwayDetail = 200

// maxAwayAhead bounds how far ahead an expected return may lie.
const maxAwayAhead = 31 * 24 * time.Hour

// Leaving is the notice an agent sends on its presence stream just before
// its bridge goes (Heartbeat.Leaving): the broker acks the heartbeat that
// carries it, the agent then closes the stream, and the broker shows the
// machine offline with this reason on every broker of the cluster.
type Leaving struct {
	// Reason is AwayStopped, AwayShutdown, AwayAsleep or AwayQuiet.
	Reason string `json:"reason"`
	// Detail says more, for the card: "lid closed", "reboot", "metered
	// connection (wlan0)". At most MaxAwayDetail bytes of UTF-8.
	Detail string `json:"detail,omitempty"`
	// ExpectedBack is when the agent expects to be back, when it knows:
	// a scheduled reboot, the next quiet check-in.
	ExpectedBack *time.Time `json:"expected_back,omitempty"`
}

// Validate implements the Decode contract.
func (l *Leaving) Validate() error {
	switch l.Reason {
	case AwayStopped, AwayShutdown, AwayAsleep, AwayQuiet:
	default:
		return fmt.Errorf("leaving: reason %q is not stopped, shutdown, asleep or quiet", l.Reason)
	}
	if err := validAwayDetail("leaving", l.Detail); err != nil {
		return err
	}
	if b := l.ExpectedBack; b != nil {
		now := time.Now()
		switch {
		case b.After(now.Add(maxAwayAhead)):
			return errors.New("leaving: expected_back is more than 31 days ahead")
		case b.Before(now.Add(-time.Hour)):
			return errors.New("leaving: expected_back is in the past")
		}
	}
	return nil
}

// maxClockAhead is how far ahead of the receiver's clock a time an agent
// reports may lie: clocks disagree, not by days.
const maxClockAhead = 24 * time.Hour

// validPast checks a time an agent says something happened at: set, and
// not ahead of now by more than clocks disagree.
func validPast(what string, t time.Time) error {
	switch {
	case t.IsZero():
		return fmt.Errorf("%s is not set", what)
	case t.After(time.Now().Add(maxClockAhead)):
		return fmt.Errorf("%s is more than a day ahead", what)
	}
	return nil
}

// What an agent says of its time away when it comes back (Returned.What).
const (
	// ReturnedResumed: the machine resumed from sleep.
	ReturnedResumed = "resumed"
	// ReturnedBooted: the machine booted since the agent's last run,
	// which ended cleanly (a shutdown notice was sent).
	ReturnedBooted = "booted"
	// ReturnedUnclean: the agent's previous run ended without a clean
	// stop (killed, crashed, the power went). Detail carries the exit
	// status or the panic's first line when known.
	ReturnedUnclean = "unclean"
	// ReturnedRestarted: the agent was stopped cleanly and started again
	// on the same boot.
	ReturnedRestarted = "restarted"
	// ReturnedUnmetered: the connection is no longer metered, so the
	// agent left quiet mode.
	ReturnedUnmetered = "unmetered"
	// ReturnedPolicy: the fleet's policy no longer asks for quiet on a
	// metered connection, so the agent left quiet mode.
	ReturnedPolicy = "policy"
)

// Returned is what an agent says, in its presence hello, of the time its
// bridge was down (Hello.Returned). It is sent on the first bridge after
// the event only.
type Returned struct {
	What string `json:"what"`
	// At is when it happened: the resume, the boot, when the previous run
	// was last known alive.
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

// Validate implements the Decode contract.
func (r *Returned) Validate() error {
	switch r.What {
	case ReturnedResumed, ReturnedBooted, ReturnedUnclean, ReturnedRestarted, ReturnedUnmetered, ReturnedPolicy:
	default:
		return fmt.Errorf("returned: %q is not resumed, booted, unclean, restarted, unmetered or policy", r.What)
	}
	if err := validPast("returned: at", r.At); err != nil {
		return err
	}
	return validAwayDetail("returned", r.Detail)
}

// Phrase says r in words for people, with at the time as the caller
// writes it: "resumed from sleep at 07:58 (slept about 2h without
// notice)". The broker's detail line and meshctl both use it.
func (r *Returned) Phrase(at string) string {
	var s string
	switch r.What {
	case ReturnedResumed:
		s = "resumed from sleep at " + at
	case ReturnedBooted:
		s = "booted at " + at
	case ReturnedUnclean:
		s = "the previous run ended uncleanly at " + at
	case ReturnedRestarted:
		s = "the agent restarted at " + at
	case ReturnedUnmetered:
		s = "left quiet mode at " + at + ": the connection is no longer metered"
	case ReturnedPolicy:
		s = "left quiet mode at " + at + ": the fleet's policy no longer asks for it"
	default:
		s = r.What + " at " + at
	}
	if r.Detail != "" {
		s += " (" + r.Detail + ")"
	}
	return s
}

func validAwayDetail(what, s string) error {
	if len(s) > MaxAwayDetail {
		return fmt.Errorf("%s: detail is %d bytes, over %d", what, len(s), MaxAwayDetail)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: detail is not UTF-8", what)
	}
	return nil
}

// RunEnd is how an agent's run ended when it did not end cleanly:
// Snapshot.LastUncleanEnd, a readiness fact (the runtime crashed).
type RunEnd struct {
	// At is when the run was last known alive (or when it crashed, when
	// the crash was recorded).
	At time.Time `json:"at"`
	// Detail is the exit status or the panic's first line, when known.
	Detail string `json:"detail,omitempty"`
}

// Metered-connection policies (AgentPolicy.OnMetered, sessiond run
// --on-metered).
const (
	// MeteredNormal: a metered connection changes nothing.
	MeteredNormal = "normal"
	// MeteredQuiet: on a metered connection the agent closes its bridge
	// and checks in on a long cadence with a compact snapshot, until the
	// connection is unmetered.
	MeteredQuiet = "quiet"
)

// AgentPolicy is what the brokers tell an agent of the fleet's policy for
// it (the machine's own, else its client's): in the presence hello reply
// and in check-in acks, so a quiet agent learns of a change at its next
// quiet check-in. Empty fields mean no policy is set: the agent's own
// flags decide.
type AgentPolicy struct {
	OnMetered string `json:"on_metered,omitempty"`
	// QuietCheckInSec is the quiet check-in cadence; zero means the
	// agent's own (sessiond run --quiet-interval, default 6 h).
	QuietCheckInSec int64 `json:"quiet_check_in_s,omitempty"`
}

// Validate implements the Decode contract.
func (p *AgentPolicy) Validate() error {
	switch p.OnMetered {
	case "", MeteredNormal, MeteredQuiet:
	default:
		return fmt.Errorf("policy: on_metered %q is not normal or quiet", p.OnMetered)
	}
	if p.QuietCheckInSec < 0 || p.QuietCheckInSec > 7*24*3600 {
		return errors.New("policy: quiet_check_in_s must be between 0 and 7 days")
	}
	return nil
}
