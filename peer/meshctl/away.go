package meshctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// This file words why a machine is away (the overlay's OfflineReason and
// its companions) for the queue, `show` and `explain`. The same words
// appear in the web console (broker/console/web/src/format.js): keep them
// together.

// reach is the REACHABILITY column: the dot beside a word, never instead
// of it. Online is "● online", with "(UDP blocked 2h)" when the bridge
// fell back from QUIC; offline is the reason and how long it has been
// away ("○ asleep 2h", "○ quiet 5h (back ~14:00)"), or, when no broker
// knows a reason (an older broker), when it was last seen.
func reach(r wire.Reachability, now time.Time) string {
	if r.Online {
		if r.UDPBlockedSince != nil {
			return "● online (UDP blocked " + shortSpan(now.Sub(*r.UDPBlockedSince)) + ")"
		}
		return "● online"
	}
	if r.OfflineReason == "" {
		if r.LastSeen == nil {
			return "○ offline (never seen)"
		}
		return "○ offline, seen " + ago(r.LastSeen, now)
	}
	s := "○ " + r.OfflineReason
	if at := awaySince(r); at != nil {
		s += " " + shortSpan(now.Sub(*at))
	}
	if b := r.ExpectedBack; b != nil {
		if b.After(now) {
			s += " (back ~" + clockAt(*b, now) + ")"
		} else {
			s += " (due " + clockAt(*b, now) + ")"
		}
	}
	return s
}

// awaySince is when the machine went away: OfflineSince, else when it
// was last seen.
func awaySince(r wire.Reachability) *time.Time {
	if r.OfflineSince != nil {
		return r.OfflineSince
	}
	return r.LastSeen
}

// shortSpan is a duration in one short unit, as the column has room for:
// "40s", "12m", "25h" (up to two days), "3d".
func shortSpan(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// clockAt is t as a person reads it, in now's time zone: "18:02" on now's
// day, "Dec 5 18:02" on another.
func clockAt(t, now time.Time) string {
	t = t.In(now.Location())
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04")
	}
	return t.Format("Jan 2 15:04")
}

// awaySentence says why an offline machine is away and when we can
// connect, for a client, starting in lower case ("your laptop went to
// sleep at 18:02; we can connect when it wakes."). Empty when no broker
// knows a reason.
func awaySentence(r wire.Reachability, now time.Time) string {
	at := "an unknown time"
	var gone time.Duration
	if t := awaySince(r); t != nil {
		at, gone = clockAt(*t, now), now.Sub(*t)
	}
	detail := paren(r.Detail)
	back := ""
	if b := r.ExpectedBack; b != nil && b.After(now) {
		back = " It is expected back at about " + clockAt(*b, now) + "."
	}
	switch r.OfflineReason {
	case wire.AwayAsleep:
		who := "the machine"
		if strings.Contains(strings.ToLower(r.Detail), "lid") {
			who = "your laptop" // only laptops have lids
		}
		return fmt.Sprintf("%s went to sleep at %s%s; we can connect when it wakes.%s", who, at, detail, back)
	case wire.AwayShutdown:
		if gone < 2*time.Minute {
			return fmt.Sprintf("the machine is shutting down%s; we can connect once it starts again.%s", detail, back)
		}
		return fmt.Sprintf("the machine was shut down at %s%s; we can connect once it starts again.%s", at, detail, back)
	case wire.AwayStopped:
		return fmt.Sprintf("the agent was stopped at %s%s; we can connect once it is started again.%s", at, detail, back)
	case wire.AwayQuiet:
		s := "the machine is on a metered connection and stays quiet to save data" + detail
		switch b := r.ExpectedBack; {
		case b == nil:
			return s + "; it checks in now and then, and comes back as soon as the connection is not metered."
		case b.After(now):
			return s + "; it checks in next at about " + clockAt(*b, now) + "."
		default:
			return s + "; its next check-in was due at " + clockAt(*b, now) + " and has not come."
		}
	case wire.AwayLost:
		return fmt.Sprintf("we lost contact at %s without notice%s; the network or power may be down.", at, detail)
	case "":
		return ""
	}
	// A reason this meshctl does not know yet: say it as it is.
	return fmt.Sprintf("it went away at %s: %s%s.", at, r.OfflineReason, detail)
}

// returnedWords says what the agent said of its time away when it came
// back: "resumed from sleep at 07:58", "booted at 07:58 (kernel update)".
func returnedWords(r *wire.Returned, now time.Time) string {
	return r.Phrase(clockAt(r.At, now))
}

// uncleanRecent is how long after an unclean end `explain` mentions it:
// a day covers "it was fine yesterday and now it is not"; older ones
// stay on the card (meshctl show) and in the check-in history.
const uncleanRecent = 24 * time.Hour

// uncleanSentence says how the agent's last run ended when it ended
// uncleanly within uncleanRecent of now; empty otherwise.
func uncleanSentence(e *wire.RunEnd, now time.Time) string {
	if e == nil || now.Sub(e.At) > uncleanRecent {
		return ""
	}
	return "The agent's previous run ended uncleanly at " + clockAt(e.At, now) + paren(e.Detail) +
		": it crashed, was killed, or the power went."
}

// upper makes the first letter of s upper case.
func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
