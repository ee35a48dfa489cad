package readiness

import (
	"strconv"
	"time"

	"github.com/readymesh/readymesh/broker/store"
)

// reasons formats one sentence per rule in f that applies, in precedence
// order. A ready machine gets an empty, non-nil slice.
func (e *evaluator) reasons(m *store.Machine, f *facts) []string {
	n := f.count()
	if n == 0 {
		return []string{}
	}
	rs := make([]string, 0, n)
	if f.never {
		rs = append(rs, "never checked in")
	}
	if f.noOS {
		rs = append(rs, "last check-in reported no operating system")
	}
	if f.stale {
		rs = append(rs, "no check-in for "+span(f.silent)+" (expected every "+span(f.interval)+")")
	}
	if f.consent != consentOK {
		rs = append(rs, consentReason(f.consent, m))
	}
	if f.behind {
		rs = append(rs, "agent "+m.AgentVersion+" is behind "+e.newest)
	}
	if f.tooMany {
		rs = append(rs, itoa(len(m.PendingUpdates))+" pending updates (limit "+itoa(e.p.MaxPendingUpdates)+")")
	}
	if f.oldCount > 0 {
		rs = append(rs, e.oldReason(m, f))
	}
	return rs
}

// count returns how many reasons f yields.
func (f *facts) count() int {
	n := 0
	for _, b := range [...]bool{f.never, f.noOS, f.stale, f.consent != consentOK, f.behind, f.tooMany, f.oldCount > 0} {
		if b {
			n++
		}
	}
	return n
}

func consentReason(g consentGap, m *store.Machine) string {
	switch g {
	case consentNever:
		return "approval required but never given"
	case consentNoExpiry:
		return "approval required but its expiry is unknown"
	}
	return "approval expired " + m.Approval.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")
}

func (e *evaluator) oldReason(m *store.Machine, f *facts) string {
	id := m.PendingUpdates[f.oldest].ID
	limit := span(e.p.MaxPendingAge)
	if f.oldCount == 1 {
		return "update " + id + " pending for " + span(f.oldestAge) + " (limit " + limit + ")"
	}
	return itoa(int(f.oldCount)) + " updates pending for more than " + limit +
		" (oldest " + id + ", " + span(f.oldestAge) + ")"
}

func itoa(n int) string { return strconv.Itoa(n) }

// spanUnits are the units span uses, largest first.
var spanUnits = [...]struct {
	secs int64
	sym  string
}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}}

// span formats d for a person: its two largest units, truncated, with a
// zero second unit left out: "3h10m", "2d", "45s". Less than a second is
// "0s".
func span(d time.Duration) string {
	s := int64(d / time.Second)
	for i, u := range spanUnits {
		if s < u.secs {
			continue
		}
		out := strconv.FormatInt(s/u.secs, 10) + u.sym
		if i+1 < len(spanUnits) {
			next := spanUnits[i+1]
			if r := s % u.secs / next.secs; r > 0 {
				out += strconv.FormatInt(r, 10) + next.sym
			}
		}
		return out
	}
	return "0s"
}
