package alerts

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Never, as an Away threshold, opens no alert for that reason.
const Never time.Duration = -1

// Away holds the offline alert's thresholds for machines that said why
// they went away (wire.Reachability.OfflineReason). A machine that went
// without notice, or whose reason no broker knows (a view from an older
// broker, a cluster restarted since the notice), is lost and has
// Config.Offline. Each threshold counts from when the machine went away.
// Zero means the documented default; a negative duration (Never) means
// no alert for that reason.
type Away struct {
	// Stopped is for an agent that was stopped (a service stop,
	// SIGTERM). Zero means 1 hour: a stop is somebody's deliberate act,
	// but an agent left stopped is a machine nobody can help.
	Stopped time.Duration
	// Shutdown is for a machine that shut down. Zero means 24 hours: a
	// desktop off overnight is normal, one that has not booted again in
	// a day is worth a look, and a different story from a machine lost
	// for a day.
	Shutdown time.Duration
	// Asleep is for a machine asleep (a closed lid). Zero means never: a
	// sleeping laptop is no fault.
	Asleep time.Duration
	// Quiet is for a machine staying quiet on a metered connection. Zero
	// means never: it still checks in on its quiet cadence, and a missed
	// quiet check-in is the check-in-overdue alert's to raise.
	Quiet time.Duration
}

// Default offline thresholds per reason (see Away and Config.Offline).
const (
	defaultLost     = 15 * time.Minute
	defaultStopped  = time.Hour
	defaultShutdown = 24 * time.Hour
)

// threshold returns how long a machine away for reason may stay away
// before its offline alert opens, and false when the reason opens none.
// An empty or unknown reason is lost. Zero fields resolve to their
// defaults here too, so a Config that skipped setDefaults still works.
func (c *Config) threshold(reason string) (time.Duration, bool) {
	d, def := c.Offline, defaultLost
	switch reason {
	case wire.AwayStopped:
		d, def = c.Away.Stopped, defaultStopped
	case wire.AwayShutdown:
		d, def = c.Away.Shutdown, defaultShutdown
	case wire.AwayAsleep:
		d, def = c.Away.Asleep, Never
	case wire.AwayQuiet:
		d, def = c.Away.Quiet, Never
	}
	if d == 0 {
		d = def
	}
	return d, d > 0
}

// offlineAlert returns m's offline alert at now, if one holds: the
// machine is offline, for longer than its reason's threshold. The alert
// keeps one identity per machine (machine ID/offline) whatever the
// reason, so a reason that changes while it is open (a quiet machine
// that turns lost, a note lost in a cluster restart) changes its detail
// and keeps its first Since; a reason whose threshold is not passed, or
// that has none (a late notice says asleep after all), resolves it.
func offlineAlert(m *store.Machine, rc wire.Reachability, now time.Time, c *Config) (since time.Time, detail string, ok bool) {
	if rc.Online {
		return time.Time{}, "", false
	}
	at := awaySince(m, rc)
	if at == nil {
		return time.Time{}, "", false // never seen: the never-checked-in alert's
	}
	reason := rc.OfflineReason
	if reason == "" {
		reason = wire.AwayLost
	}
	limit, ok := c.threshold(reason)
	if !ok || now.Sub(*at) <= limit {
		return time.Time{}, "", false
	}
	return *at, offlineDetail(reason, at.UTC(), limit, rc.Detail), true
}

// awaySince is when m went away: the overlay's OfflineSince when the
// brokers know it, else when the machine was last seen.
func awaySince(m *store.Machine, rc wire.Reachability) *time.Time {
	switch {
	case rc.OfflineSince != nil:
		return rc.OfflineSince
	case m.LastSeen != nil:
		return m.LastSeen
	}
	return rc.LastSeen
}

// offlineDetail words the alert for its reason, so a machine shut down
// for a day does not read like one lost for a day.
func offlineDetail(reason string, at time.Time, limit time.Duration, said string) string {
	var what, why string
	switch reason {
	case wire.AwayStopped:
		what, why = "agent stopped", "the agent has not been started again"
	case wire.AwayShutdown:
		what, why = "shut down", "it has not booted again"
	case wire.AwayAsleep:
		what, why = "asleep", "it has not woken"
	case wire.AwayQuiet:
		what, why = "quiet on a metered connection", "it keeps no bridge while metered"
	default:
		what, why = "lost", "no notice, the network or power may be gone"
	}
	d := fmt.Sprintf("%s since %s (threshold %s): %s", what, at.Format(time.RFC3339), limit, why)
	if said != "" {
		d += " (" + said + ")"
	}
	return d
}

// ParseThreshold reads an Away threshold from a flag or a config file: a
// duration ("1h", "90m"), or "none" (also "never", "off") for no alert.
// "0" means the default; a negative duration means none.
func ParseThreshold(s string) (time.Duration, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "never", "off":
		return Never, nil
	case "":
		return 0, errors.New(`empty threshold: want a duration such as 1h, or "none"`)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf(`threshold %q: want a duration such as 1h, or "none"`, s)
	}
	if d < 0 {
		d = Never
	}
	return d, nil
}

// ThresholdFlag is a flag.Value that sets the threshold *d with
// ParseThreshold: fs.Var(alerts.ThresholdFlag(&cfg.Stopped), …).
func ThresholdFlag(d *time.Duration) *Threshold { return (*Threshold)(d) }

// Threshold is an Away threshold as a flag.Value.
type Threshold time.Duration

// String implements flag.Value: "none" for no alert, "0s" for the
// default.
func (t *Threshold) String() string {
	switch {
	case t == nil || *t == 0:
		return "0s"
	case *t < 0:
		return "none"
	}
	return time.Duration(*t).String()
}

// Get implements flag.Getter, so a config file and the environment can
// set the flag too. It gives the text String gives: not a
// time.Duration, so a refused value is reported with Set's own error,
// which mentions "none".
func (t *Threshold) Get() any { return t.String() }

// Set implements flag.Value.
func (t *Threshold) Set(s string) error {
	d, err := ParseThreshold(s)
	if err != nil {
		return err
	}
	*t = Threshold(d)
	return nil
}
