package localdb

import "time"

var keyConsent = []byte("consent")

// Approval is the last approval given at the machine.
type Approval struct {
	LastApprovedAt *time.Time `json:"last_approved_at,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	ApprovedBy     string     `json:"approved_by,omitempty"`
	// Mode is the highest mode approved: a window covers sessions up to it.
	Mode string `json:"mode,omitempty"`
}

// ConsentState is the agent's consent posture.
type ConsentState struct {
	Policy    string   `json:"policy,omitempty"`
	WindowSec int64    `json:"window_s,omitempty"`
	Approval  Approval `json:"approval"`
}

// SetConsent stores the consent posture.
func (d *DB) SetConsent(c ConsentState) error { return d.put(keyConsent, c) }

// Consent returns the stored consent posture.
func (d *DB) Consent() (c ConsentState, ok bool, err error) {
	ok, err = d.get(keyConsent, &c)
	return c, ok, err
}
