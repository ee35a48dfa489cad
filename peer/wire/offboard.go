package wire

import (
	"errors"
	"time"
)

// Offboarding operations (admin only). Each is recorded in the audit log
// with the technician that ran it, and replicated to every broker, which
// ends what the revoked party holds open there.
const (
	OpMachinesRemove     = "machines.remove"     // ShowArgs → Removal
	OpTechniciansDisable = "technicians.disable" // NameArgs → Technician
	OpTechniciansEnable  = "technicians.enable"  // NameArgs → Technician
	OpTechniciansRemove  = "technicians.remove"  // NameArgs → Technician (as it was)
	OpTokensList         = "tokens.list"         // no args → []TokenInfo
	OpTokensRevoke       = "tokens.revoke"       // NameArgs (the token ID) → TokenInfo
	OpClientsRemove      = "clients.remove"      // ClientRemoveArgs → ClientRemoved
)

// Audit events of offboarding.
const (
	AuditMachineRemoved     = "machine.removed"
	AuditTechnicianDisabled = "technician.disabled"
	AuditTechnicianEnabled  = "technician.enabled"
	AuditTechnicianRemoved  = "technician.removed"
	AuditTokenRevoked       = "token.revoked"
	AuditClientRemoved      = "client.removed"
	AuditCredentialRotated  = "admin.credential_rotated"
)

// NameArgs names one technician or token.
type NameArgs struct {
	Name string `json:"name"`
}

// Validate implements the Decode contract.
func (a *NameArgs) Validate() error {
	if a.Name == "" || len(a.Name) > 128 {
		return errors.New("name must be 1-128 characters")
	}
	return nil
}

// Removal answers OpMachinesRemove.
type Removal struct {
	Machine       string    `json:"machine"` // peer ID
	Client        string    `json:"client"`
	Name          string    `json:"name"`
	By            string    `json:"by"`
	At            time.Time `json:"at"`
	JobsCancelled int       `json:"jobs_cancelled"`
}

// TokenInfo is an enrolment token as tokens ls shows it. ID is the first
// 16 hex digits of the hash of its secret: enough to revoke it, never
// enough to enrol with.
type TokenInfo struct {
	ID        string    `json:"id"`
	Client    string    `json:"client"`
	UsesLeft  int       `json:"uses_left"`
	Uses      int       `json:"uses"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// ClientRemoveArgs removes a client; with Force, its machines and tokens
// go with it.
type ClientRemoveArgs struct {
	Name  string `json:"name"`
	Force bool   `json:"force,omitempty"`
}

// Validate implements the Decode contract.
func (a *ClientRemoveArgs) Validate() error { return ValidName("client name", a.Name) }

// ClientRemoved answers OpClientsRemove: the machines removed with it.
type ClientRemoved struct {
	Name     string   `json:"name"`
	Machines []string `json:"machines_removed"`
}
