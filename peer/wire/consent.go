package wire

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtoPolicy: broker → agent, a consent policy set by a technician with
// admin rights (ConsentPolicyArgs → Reply).
const ProtoPolicy protocol.ID = "/readymesh/policy/1.0.0"

// OpConsentSet sets a machine's consent policy: ConsentPolicyArgs →
// nothing (admin).
const OpConsentSet = "consent.set"

// ConsentPolicyArgs sets a machine's consent policy.
type ConsentPolicyArgs struct {
	Machine   string `json:"machine,omitempty"`
	Policy    string `json:"policy"`
	WindowSec int64  `json:"window_s,omitempty"` // window: how long one approval lasts
	By        string `json:"by,omitempty"`       // the technician, filled in by the broker
}

// Validate implements the Decode contract.
func (a *ConsentPolicyArgs) Validate() error {
	switch a.Policy {
	case ConsentNever, ConsentWindow, ConsentSession:
	default:
		return fmt.Errorf("consent policy %q is not never, window or session", a.Policy)
	}
	if a.WindowSec < 0 || a.WindowSec > 31*24*3600 {
		return errors.New("consent window must be between 1s and 31 days")
	}
	return nil
}

// ConsentRequest is a session waiting for the person at the machine.
type ConsentRequest struct {
	ID         string    `json:"id"` // what sessiond approve and deny take
	Session    string    `json:"session"`
	Technician string    `json:"technician"`
	Mode       string    `json:"mode"`
	Policy     string    `json:"policy"`
	Asked      time.Time `json:"asked"`
}
