package readiness

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestUncleanEndOnCard: the machine's last unclean end is on its card as
// a fact, and changes neither its state nor its reasons.
func TestUncleanEndOnCard(t *testing.T) {
	for _, tc := range []struct {
		name    string
		machine func() store.Machine
	}{
		{"ready", func() store.Machine { return readyMachine() }},
		{"degraded", func() store.Machine {
			m := readyMachine()
			m.PendingUpdates = pending(3, 60*day)
			return m
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.machine()
			without := Evaluate(&m, "", now, Policy{})
			if without.State != tc.name {
				t.Fatalf("state %s, want %s", without.State, tc.name)
			}
			if without.LastUncleanEnd != nil {
				t.Fatalf("unclean end %+v before any", without.LastUncleanEnd)
			}
			m.LastUncleanEnd = &wire.RunEnd{At: now.Add(-2 * time.Hour), Detail: "panic: assignment to entry in nil map"}
			with := Evaluate(&m, "", now, Policy{})
			if with.LastUncleanEnd != m.LastUncleanEnd {
				t.Errorf("card's unclean end %+v, want the machine's", with.LastUncleanEnd)
			}
			if with.State != without.State || !reflect.DeepEqual(with.Reasons, without.Reasons) {
				t.Errorf("state %s %q, without the unclean end %s %q", with.State, with.Reasons, without.State, without.Reasons)
			}
			card := Card(&m, wire.Reachability{}, "", now, Policy{})
			raw, err := json.Marshal(card)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(raw), `"last_unclean_end":{"at":"`) || !strings.Contains(string(raw), "nil map") {
				t.Errorf("card JSON lacks the unclean end: %s", raw)
			}
		})
	}
}
