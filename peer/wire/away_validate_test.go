package wire

import (
	"strings"
	"testing"
	"time"
)

// TestAwayTimesChecked: the times an agent reports of being away are
// set and plausible, or the message is refused.
func TestAwayTimesChecked(t *testing.T) {
	now := time.Now()
	past, ahead := now.Add(-2*time.Hour), now.Add(48*time.Hour)
	for name, tc := range map[string]struct {
		v    interface{ Validate() error }
		want string // "" accepted
	}{
		"returned":                 {&Returned{What: ReturnedResumed, At: now}, ""},
		"returned without a time":  {&Returned{What: ReturnedResumed}, "not set"},
		"returned two days ahead":  {&Returned{What: ReturnedBooted, At: ahead}, "ahead"},
		"expected back in an hour": {&Leaving{Reason: AwayQuiet, ExpectedBack: ptrTime(now.Add(time.Hour))}, ""},
		"expected back long gone":  {&Leaving{Reason: AwayQuiet, ExpectedBack: &past}, "in the past"},
		"hello blocked ahead":      {&Hello{MachineID: "m", UDPBlockedSince: &ahead}, "ahead"},
		"hello bad return":         {&Hello{MachineID: "m", Returned: &Returned{What: "teleported", At: now}}, "hello: returned"},
	} {
		err := tc.v.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}

// TestSnapshotAwayFields: an unclean end needs its time, and the
// interval a snapshot reports is bounded.
func TestSnapshotAwayFields(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Snapshot)
		want string
	}{
		"unclean end without a time": {func(s *Snapshot) { s.LastUncleanEnd = &RunEnd{Detail: "panic: x"} }, "not set"},
		"an interval of centuries":   {func(s *Snapshot) { s.Runtime.CheckInIntervalSec = 1 << 40 }, "over 31 days"},
		"on_metered of another kind": {func(s *Snapshot) { s.Runtime.OnMetered = "loud" }, "not normal or quiet"},
	} {
		s := seedSnapshot()
		tc.edit(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}

func ptrTime(t time.Time) *time.Time { return &t }
