package store

import (
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Machine is one machine's durable record without its full snapshot: what
// the broker needs to build a machine card and answer queue queries. The
// fields under "from the latest snapshot" are copied out of it when it is
// stored (at check-in, or imported from another broker), so a fleet listing
// never decodes snapshots.
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
	// LastUpdate is the update report of the last check-in taken here
	// that carried one. It is not replicated: other brokers learn of it
	// from the update job it names (JobUpdate.Report).
	LastUpdate *wire.UpdateReport `json:"last_update,omitempty"`

	// From the latest snapshot.
	OS             *wire.OS              `json:"os,omitempty"`
	AgentVersion   string                `json:"agent_version,omitempty"`
	PendingUpdates []wire.PendingUpdate  `json:"pending_updates,omitempty"` // FirstSeen set by the store
	Runtime        wire.RuntimeConfig    `json:"runtime"`
	Approval       wire.Approval         `json:"approval"`
	CollectorErrs  []wire.CollectorError `json:"collector_errors,omitempty"`
	// LastUncleanEnd is the newest unclean end of the agent's run that the
	// latest snapshot reports (wire.Snapshot.LastUncleanEnd).
	LastUncleanEnd *wire.RunEnd `json:"last_unclean_end,omitempty"`

	// History is a ring of summaries in the history bucket: HistorySlots
	// slots are in use and HistoryNext is the slot the next check-in
	// overwrites (the oldest once the ring is full).
	HistorySlots int `json:"history_slots"`
	HistoryNext  int `json:"history_next"`
	// HistoryHash is the xor of hash64 of each stored history item's JSON:
	// it lets brokers compare histories without reading them.
	HistoryHash uint64 `json:"history_hash,omitempty"`
}

// CheckInMeta describes one committed check-in.
type CheckInMeta struct {
	Seq         uint64    `json:"seq"`
	At          time.Time `json:"at"` // when the broker committed it
	Reason      string    `json:"reason"`
	BootID      string    `json:"boot_id,omitempty"`
	CollectedAt time.Time `json:"collected_at"`
	// Digest is the SHA-256 of the stored snapshot (hex).
	Digest string `json:"digest,omitempty"`
}

// Token is an enrolment token as callers see it. Only the hash of its
// secret is kept. Uses is the number of uses granted; UsesLeft is what is
// left of them across the cluster (see TokenRecord).
type Token struct {
	Client    string    `json:"client"`
	UsesLeft  int       `json:"uses_left"`
	Uses      int       `json:"uses"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Technician is a technician as the broker sees it: the wire record plus
// its one-time login token.
type Technician struct {
	wire.Technician
	// LoginHash is the hash of the unused one-time login token; empty once
	// it has been used.
	LoginHash      string    `json:"login_hash,omitempty"`
	LoginExpiresAt time.Time `json:"login_expires_at,omitempty"`
}

// Stamp is what every control record carries for replication: the clock
// of its last write, the clock of the write that created it (its
// incarnation: parts that only grow are merged only between copies of the
// same incarnation), and whether it is a tombstone. A tombstone keeps
// only the record's name and its stamp.
type Stamp struct {
	Born    Clock `json:"born"`
	Clock   Clock `json:"clock"`
	Deleted bool  `json:"deleted,omitempty"`
}

// ClientRecord is a stored client.
type ClientRecord struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	Stamp
}

// TokenRecord is a stored enrolment token. Uses counts the uses granted;
// Spent counts the uses consumed, per broker (a grow-only counter: each
// broker only ever raises its own entry, and copies merge by taking the
// larger value of each entry). UsesLeft is Uses minus the sum of Spent,
// never below zero.
type TokenRecord struct {
	Token
	Spent map[string]int `json:"spent,omitempty"`
	Stamp
}

// TechnicianRecord is a stored technician. Keys (in Technician) only grow
// and LoginUsed only goes from false to true within one incarnation;
// once LoginUsed is set LoginHash is empty.
type TechnicianRecord struct {
	Technician
	LoginUsed bool `json:"login_used,omitempty"`
	Stamp
}

// AdminRecord is the stored admin credential hash.
type AdminRecord struct {
	Hash string `json:"hash,omitempty"`
	Stamp
}

// spent is the sum of the uses consumed on every broker.
func (t *TokenRecord) spent() int {
	n := 0
	for _, v := range t.Spent {
		n += v
	}
	return n
}

// settle recomputes UsesLeft from Uses and Spent.
func (t *TokenRecord) settle() { t.UsesLeft = max(0, t.Uses-t.spent()) }

// exists reports whether the record exists (is not a tombstone).
func (st Stamp) exists() bool { return !st.Deleted }
