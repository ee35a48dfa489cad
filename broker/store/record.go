package store

import (
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Machine is one machine's durable record without its full snapshot: what
// the broker needs to build a machine card and answer queue queries. The
// fields under "from the latest snapshot" are copied out of it at check-in so
// a fleet listing never decodes snapshots.
type Machine struct {
	ID string `json:"id"` // the agent's peer ID
	// Rev counts committed writes of this record.
	Rev        uint64    `json:"rev"`
	Name       string    `json:"name"`
	Client     string    `json:"client"`
	Hostname   string    `json:"hostname,omitempty"`
	EnrolledAt time.Time `json:"enrolled_at"`
	// LastSeen is the last time a broker saw the machine's bridge up. It is
	// the only reachability fact that is stored.
	LastSeen *time.Time `json:"last_seen,omitempty"`

	// The latest committed check-in; nil until the first one.
	LastCheckIn *CheckInMeta `json:"last_check_in,omitempty"`

	// From the latest snapshot.
	OS             *wire.OS              `json:"os,omitempty"`
	AgentVersion   string                `json:"agent_version,omitempty"`
	PendingUpdates []wire.PendingUpdate  `json:"pending_updates,omitempty"` // FirstSeen set by the store
	Runtime        wire.RuntimeConfig    `json:"runtime"`
	Approval       wire.Approval         `json:"approval"`
	CollectorErrs  []wire.CollectorError `json:"collector_errors,omitempty"`

	// History is a ring of summaries in the history bucket: HistorySlots
	// slots are in use and HistoryNext is the slot the next check-in
	// overwrites (the oldest once the ring is full).
	HistorySlots int `json:"history_slots"`
	HistoryNext  int `json:"history_next"`
}

// CheckInMeta describes one committed check-in.
type CheckInMeta struct {
	Seq         uint64    `json:"seq"`
	At          time.Time `json:"at"` // when the broker committed it
	Reason      string    `json:"reason"`
	BootID      string    `json:"boot_id,omitempty"`
	CollectedAt time.Time `json:"collected_at"`
}

// Token is a stored enrolment token. Only the hash of its secret is kept.
type Token struct {
	Client    string    `json:"client"`
	UsesLeft  int       `json:"uses_left"`
	Uses      int       `json:"uses"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Technician is a stored technician: the wire record plus what only the
// broker sees.
type Technician struct {
	wire.Technician
	// LoginHash is the hash of the unused one-time login token; empty once
	// it has been used.
	LoginHash      string    `json:"login_hash,omitempty"`
	LoginExpiresAt time.Time `json:"login_expires_at,omitempty"`
}
