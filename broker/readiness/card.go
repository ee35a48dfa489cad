package readiness

import (
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Card builds m's machine card: its readiness evaluated now, the live
// reachability reach as given, and no session. It shares pointers and
// slices with m, as Evaluate does.
func Card(m *store.Machine, reach wire.Reachability, newest string, now time.Time, p Policy) wire.Card {
	return wire.Card{
		ID:           m.ID,
		Name:         m.Name,
		Client:       m.Client,
		Readiness:    Evaluate(m, newest, now, p),
		Reachability: reach,
	}
}
