package wire

import "time"

// Readiness states, best first. README documents the rules.
const (
	StateReady           = "ready"
	StateDegraded        = "degraded"
	StateConsentRequired = "consent-required"
	StateStale           = "stale"
	StateIncomplete      = "incomplete"
)

// Card is a machine card: the three layers of what the console knows about
// one machine. Readiness and Reachability are always present; Session is
// null until a live session is relevant.
type Card struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	Client       string       `json:"client"`
	Readiness    Readiness    `json:"readiness"`
	Reachability Reachability `json:"reachability"`
	Session      *Session     `json:"session"`

	// Only in `show`: the full stored state.
	Snapshot *Snapshot     `json:"snapshot,omitempty"`
	History  []HistoryItem `json:"history,omitempty"`
}

// Readiness is the stored-state layer.
type Readiness struct {
	State              string          `json:"state"`
	Reasons            []string        `json:"reasons"`
	EnrolledAt         time.Time       `json:"enrolled_at"`
	LastCheckIn        *time.Time      `json:"last_check_in"`
	CheckInReason      string          `json:"check_in_reason"`
	CheckInSeq         uint64          `json:"check_in_seq"`
	SnapshotAgeSec     *float64        `json:"snapshot_age_s"`
	AgentVersion       string          `json:"agent_version"`
	NewestAgentVersion string          `json:"newest_agent_version"`
	AgentBehind        bool            `json:"agent_behind"`
	OS                 *OS             `json:"os"`
	PendingUpdates     []PendingUpdate `json:"pending_updates"`
	// UpdatesUnknown, when set, says why the machine could not tell its
	// pending updates at its last check-in (its updates collector
	// failed): PendingUpdates is then empty because nothing is known, not
	// because nothing is pending.
	UpdatesUnknown string   `json:"updates_unknown,omitempty"`
	Approval       Approval `json:"approval"`
	// Rollout is the rollout the machine is in (its newest that has not
	// ended for it), or the one that would fix an agent behind; null
	// when none.
	Rollout *RolloutRef `json:"rollout,omitempty"`
	// LastUpdate is how the machine's last update went, from the check-in
	// that reported it.
	LastUpdate *UpdateReport `json:"last_update,omitempty"`
	// LastUncleanEnd is the last time the agent's run ended without a
	// clean stop (it crashed, was killed, or the power went), as the
	// agent reported it: a readiness fact.
	LastUncleanEnd *RunEnd `json:"last_unclean_end,omitempty"`
}

// Reachability is the live overlay. It is never stored as a verdict; only
// LastSeen is persisted.
type Reachability struct {
	Online   bool       `json:"online"`
	Since    *time.Time `json:"since"`
	LastSeen *time.Time `json:"last_seen"`
	Broker   string     `json:"broker"`
	// Transport is the bridge's transport: quic, tcp or websocket. A
	// machine on tcp or websocket sits on a network that blocks UDP.
	Transport string `json:"transport,omitempty"`
	// Load1 and UserPresent are the heartbeat signals of a machine bridged
	// to the answering broker (null otherwise). They are session status
	// (Session.Busy, Session.UserPresent), which the broker keeps in its
	// session-status table; the card carries them here too, where scripts
	// have always read them.
	Load1       *float64 `json:"load1"`
	UserPresent *bool    `json:"user_present"`

	// OfflineReason says why an offline machine is away: stopped,
	// shutdown, asleep, quiet or lost (the Away constants); empty while
	// online, and for a machine never seen. It is the overlay's, kept in
	// memory and replicated between brokers like presence, never stored.
	OfflineReason string `json:"offline_reason,omitempty"`
	// OfflineSince is when the machine went away.
	OfflineSince *time.Time `json:"offline_since,omitempty"`
	// Detail says more, in a line for people: "lid closed" when asleep,
	// "heartbeats missed" when lost; while online, what happened while
	// it was away ("resumed from sleep at 07:58") and "UDP blocked since
	// …" on a bridge that fell back to TCP.
	Detail string `json:"detail,omitempty"`
	// ExpectedBack is when the machine is expected back, when known (a
	// scheduled reboot, the next quiet check-in).
	ExpectedBack *time.Time `json:"expected_back,omitempty"`
	// UDPBlockedSince is set on an online machine whose bridge fell back
	// from QUIC to TCP or WebSocket: since when the agent has found UDP
	// blocked.
	UDPBlockedSince *time.Time `json:"udp_blocked_since,omitempty"`
	// Returned is what the agent said of its time away when it came back
	// on this bridge.
	Returned *Returned `json:"returned,omitempty"`
}

// Session is the session-status layer: null unless a live session is open
// or waiting for approval. The agent is its source of truth; the broker
// holding the agent's bridge shows what the agent last reported, with the
// signals of its heartbeats.
type Session struct {
	State       string   `json:"state"` // active, or waiting-for-approval
	Mode        string   `json:"mode,omitempty"`
	Path        string   `json:"path,omitempty"` // direct-quic, direct-webrtc, relayed via BROKER
	Technicians []string `json:"technicians,omitempty"`
	Sessions    int      `json:"sessions,omitempty"`
	// Waiting counts session requests waiting for the person at the
	// machine to approve them.
	Waiting int `json:"waiting_for_approval,omitempty"`
	// InputPaused: the person at the machine paused remote input; output
	// keeps flowing, technician input is refused.
	InputPaused bool `json:"input_paused,omitempty"`
	// Busy: the machine's load is high (above the broker's --busy-load
	// per core), so commands will be slow.
	Busy bool `json:"busy,omitempty"`
	// UserPresent: a person is logged in at the machine.
	UserPresent bool `json:"user_present,omitempty"`
	// Shared lists the terminals other technicians may watch.
	Shared []SharedTerminal `json:"shared,omitempty"`
}

// SharedTerminal is a live terminal whose technician allows observers.
type SharedTerminal struct {
	Session    string `json:"session"`
	Technician string `json:"technician"`
}

// HistoryItem summarises one stored check-in. The broker keeps the full
// snapshot only for the latest check-in and these summaries for a bounded
// number of earlier ones, so history costs a few hundred bytes a check-in.
type HistoryItem struct {
	Seq            uint64    `json:"seq"`
	At             time.Time `json:"at"`
	Reason         string    `json:"reason"`
	BootID         string    `json:"boot_id,omitempty"`
	AgentVersion   string    `json:"agent_version"`
	OSVersion      string    `json:"os_version,omitempty"`
	Packages       int       `json:"packages"`
	PendingUpdates int       `json:"pending_updates"`
	Digest         string    `json:"digest"` // sha256 of the stored snapshot
	// Detail says more of the check-in: for ReasonUnclean, how the
	// previous run ended.
	Detail string `json:"detail,omitempty"`
}
