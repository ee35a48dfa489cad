package wire

import (
	"errors"
	"time"
)

// OpAudit reads the broker's audit log: AuditArgs → []AuditEntry.
const OpAudit = "audit"

// Audit events.
const (
	AuditRequested    = "session.requested"
	AuditGranted      = "session.granted"
	AuditRefused      = "session.refused" // by the broker, or by the agent (consent denied, timed out, grant refused)
	AuditStarted      = "session.started" // the agent accepted the connection
	AuditEnded        = "session.ended"
	AuditPolicy       = "consent.policy"
	AuditConsoleLogin = "console.login" // a technician signed in to the web console
)

// AuditEntry is one line of the broker's audit log.
type AuditEntry struct {
	Seq        uint64    `json:"seq"`
	At         time.Time `json:"at"`
	Event      string    `json:"event"`
	Session    string    `json:"session,omitempty"`
	Technician string    `json:"technician,omitempty"`
	Machine    string    `json:"machine,omitempty"` // client/name
	Mode       string    `json:"mode,omitempty"`
	Transport  string    `json:"transport,omitempty"`
	Path       string    `json:"path,omitempty"`
	Detail     string    `json:"detail,omitempty"`
}

// AuditArgs filters the audit log.
type AuditArgs struct {
	Machine string `json:"machine,omitempty"`
	Session string `json:"session,omitempty"`
	Limit   int    `json:"limit,omitempty"` // zero means 100
}

// Validate implements the Decode contract.
func (a *AuditArgs) Validate() error {
	if a.Limit < 0 || a.Limit > 10000 {
		return errors.New("limit must be between 1 and 10000")
	}
	return nil
}
