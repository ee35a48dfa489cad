package readiness

import (
	"fmt"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// Match reports whether c passes every filter set in a: Client (exact),
// Readiness (exact state), Online, and PendingUpdate, which must equal the
// ID of one of the card's pending updates ignoring case. Zero fields match
// everything. For is not applied here: whether a machine is fit for a kind
// of work depends on its live session status, which only the broker knows.
func Match(c *wire.Card, a *wire.MachinesArgs) bool {
	return matches(a, c.Client, c.Readiness.State, c.Reachability.Online, c.Readiness.PendingUpdates)
}

// matches is Match on the parts of a card, so Query can filter before it
// builds cards.
func matches(a *wire.MachinesArgs, client, state string, online bool, ups []wire.PendingUpdate) bool {
	switch {
	case a.Client != "" && client != a.Client,
		a.Readiness != "" && state != a.Readiness,
		a.Online != nil && online != *a.Online:
		return false
	}
	return a.PendingUpdate == "" || hasUpdate(ups, a.PendingUpdate)
}

func hasUpdate(ups []wire.PendingUpdate, id string) bool {
	for i := range ups {
		if strings.EqualFold(ups[i].ID, id) {
			return true
		}
	}
	return false
}

// ValidateArgs checks a machines filter: For must be empty or a known
// kind of work, and a readiness state that does not exist is reported as
// ErrUnknownState with the valid states listed.
func ValidateArgs(a *wire.MachinesArgs) error {
	switch a.For {
	case "", wire.ForQuickFix, wire.ForMaintenance:
	default:
		return fmt.Errorf("--for %q: use %s or %s", a.For, wire.ForQuickFix, wire.ForMaintenance)
	}
	if a.Readiness == "" || rankOf(a.Readiness) != rankUnknown {
		return nil
	}
	return fmt.Errorf("%w %q: valid states are %s", ErrUnknownState, a.Readiness, strings.Join(states[:], ", "))
}
