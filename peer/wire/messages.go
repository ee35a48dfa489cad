package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Error is the error part of every reply. Code is stable for programs to
// branch on; Message is for people.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message + " (" + e.Code + ")" }

// Error codes.
const (
	CodeBadRequest   = "bad_request"   // malformed or invalid input
	CodeTooLarge     = "too_large"     // over a size limit
	CodeUnauthorized = "unauthorized"  // unknown key or credential
	CodeForbidden    = "forbidden"     // known, but not allowed
	CodeNotFound     = "not_found"     // no such record
	CodeConflict     = "conflict"      // name taken, sequence out of order
	CodeTokenInvalid = "token_invalid" // unknown, expired or used-up token
	CodeInternal     = "internal"      // the broker failed; retry later
	CodeUnavailable  = "unavailable"   // the machine or a resource cannot be reached now
	CodeGone         = "gone"          // it happened, or can no longer happen: do not retry
	CodeRemoved      = "removed"       // the machine was removed from the fleet: do not retry
	CodeRevoked      = "revoked"       // the technician was disabled or removed
	CodeVersion      = "version"       // the peer's protocol version is not served here
	// CodeNeedFull refuses a compact snapshot (Snapshot.PackagesSHA256)
	// whose package list the broker cannot fill from the snapshot it has:
	// send the same check-in again with the whole package list.
	CodeNeedFull = "need_full_snapshot"
)

// Errorf builds an *Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// BrokerInfo is how a peer finds and pins a broker.
type BrokerInfo struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"bridge_addrs"` // multiaddrs, each ending in /p2p/PEER_ID
	HTTP   string   `json:"http_addr,omitempty"`
	Name   string   `json:"name,omitempty"`
	Region string   `json:"region,omitempty"`
	// Gossip is the broker's cluster gossip address, when it has one;
	// WANGossip its address in the pool of all regions, when it has one.
	Gossip    string `json:"gossip_addr,omitempty"`
	WANGossip string `json:"wan_gossip_addr,omitempty"`
	// STUNPort is the UDP port of the broker's STUN server on the
	// broker's bridge addresses; 0 when it has none.
	STUNPort int `json:"stun_port,omitempty"`
}

// Enroll asks the broker to enrol the calling agent.
type Enroll struct {
	Secret       string `json:"secret"`    // the token's secret part
	BrokerID     string `json:"broker_id"` // the broker the token names
	Name         string `json:"name"`
	Hostname     string `json:"hostname,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`
	Versions
}

// Validate implements the Decode contract.
func (m *Enroll) Validate() error {
	if m.Secret == "" {
		return errors.New("enroll: secret is empty")
	}
	return ValidName("enroll: name", m.Name)
}

// EnrollReply answers Enroll.
type EnrollReply struct {
	Error     *Error     `json:"error,omitempty"`
	MachineID string     `json:"machine_id,omitempty"`
	Name      string     `json:"name,omitempty"`
	Client    string     `json:"client,omitempty"`
	Broker    BrokerInfo `json:"broker"`
}

// Check-in reasons.
const (
	ReasonEnroll   = "enroll"   // first check-in after enrolment
	ReasonReboot   = "reboot"   // the boot ID changed since the last check-in
	ReasonRestart  = "restart"  // the agent restarted on the same boot
	ReasonInterval = "interval" // the periodic check-in
	ReasonNetwork  = "network"  // an address or default route changed
	ReasonDemand   = "demand"   // `sessiond checkin` or a broker request
	// ReasonUnclean: the first check-in after a run that ended without a
	// clean stop (Snapshot.LastUncleanEnd says how). New in 0.4.0.
	ReasonUnclean = "unclean-end"
	// ReasonQuiet: a quiet-mode check-in on a metered connection, with a
	// compact snapshot. New in 0.4.0.
	ReasonQuiet = "quiet"
)

var reasons = map[string]bool{ReasonEnroll: true, ReasonReboot: true, ReasonRestart: true,
	ReasonInterval: true, ReasonNetwork: true, ReasonDemand: true, ReasonUpdated: true, ReasonRolledBack: true,
	ReasonUnclean: true, ReasonQuiet: true}

// CheckIn carries one snapshot. MachineID must be the sender's peer ID; the
// broker refuses anything else.
type CheckIn struct {
	MachineID string   `json:"machine_id"`
	Seq       uint64   `json:"seq"`
	Reason    string   `json:"reason"`
	Snapshot  Snapshot `json:"snapshot"`
	// Update says how an update went: set on the first check-in after
	// one (Reason ReasonUpdated or ReasonRolledBack).
	Update *UpdateReport `json:"update,omitempty"`
}

// Validate implements the Decode contract.
func (m *CheckIn) Validate() error {
	if m.MachineID == "" {
		return errors.New("checkin: machine_id is empty")
	}
	if m.Seq == 0 {
		return errors.New("checkin: seq must be positive")
	}
	if !reasons[m.Reason] {
		return fmt.Errorf("checkin: unknown reason %q", m.Reason)
	}
	if m.Update != nil {
		if err := m.Update.Validate(); err != nil {
			return fmt.Errorf("checkin: %w", err)
		}
	}
	if m.Snapshot.PackagesSHA256 != "" && m.Reason != ReasonQuiet {
		return fmt.Errorf("checkin: a %q check-in carries a compact snapshot; only quiet ones may", m.Reason)
	}
	return m.Snapshot.Validate()
}

// CheckInAck is sent only after the check-in is committed to the store.
type CheckInAck struct {
	Error     *Error    `json:"error,omitempty"`
	Seq       uint64    `json:"seq"`
	Duplicate bool      `json:"duplicate,omitempty"` // already stored earlier
	StoredAt  time.Time `json:"stored_at"`
	// Policy is the fleet's policy for the agent, as in HelloReply: a
	// quiet agent has no presence stream and learns it here.
	Policy *AgentPolicy `json:"policy,omitempty"`
}

// Hello opens a presence stream.
type Hello struct {
	MachineID    string `json:"machine_id"`
	AgentVersion string `json:"agent_version"`
	Versions
	// Returned says what happened while the agent was away (it resumed
	// from sleep, the machine booted, the previous run ended uncleanly),
	// on the first bridge after it. Brokers of earlier releases ignore it.
	Returned *Returned `json:"returned,omitempty"`
	// UDPBlockedSince is set while the agent's bridges fall back from
	// QUIC to TCP or WebSocket: since the first fallback in a row. The
	// network blocks UDP (an office firewall changed).
	UDPBlockedSince *time.Time `json:"udp_blocked_since,omitempty"`
}

// Validate implements the Decode contract.
func (m *Hello) Validate() error {
	if m.MachineID == "" {
		return errors.New("hello: machine_id is empty")
	}
	if m.Returned != nil {
		if err := m.Returned.Validate(); err != nil {
			return fmt.Errorf("hello: %w", err)
		}
	}
	if m.UDPBlockedSince != nil {
		if err := validPast("hello: udp_blocked_since", *m.UDPBlockedSince); err != nil {
			return err
		}
	}
	return nil
}

// HelloReply accepts or refuses a presence stream and tells the agent the
// heartbeat interval the broker expects and the brokers it may fail over to.
type HelloReply struct {
	Error       *Error `json:"error,omitempty"`
	HeartbeatMS int64  `json:"heartbeat_ms"`
	// Brokers are the alive brokers of the cluster, this one first.
	Brokers []BrokerInfo `json:"brokers,omitempty"`
	// Left are the peer IDs of brokers that left the cluster cleanly (shut
	// down, not failed), for the agent to forget. Brokers of earlier
	// releases never send it.
	Left []string `json:"left_brokers,omitempty"`
	// ReconnectSpreadMS is the window over which the agent spreads its
	// first reconnect after this bridge drops: uniform in [0, window]. A
	// broker sizes it so that taking back its share of the fleet at once
	// (after it restarts, or when another broker fails) uses half of its
	// accept rate, leaving the rest for technicians. Zero (and brokers of
	// earlier releases) means reconnect at once.
	ReconnectSpreadMS int64 `json:"reconnect_spread_ms,omitempty"`
	// Policy is the fleet's policy for this agent; nil from brokers of
	// earlier releases, and when none is set.
	Policy *AgentPolicy `json:"policy,omitempty"`
}

// Validate implements the Decode contract.
func (m *HelloReply) Validate() error {
	if m.Policy != nil {
		if err := m.Policy.Validate(); err != nil {
			return fmt.Errorf("hello reply: %w", err)
		}
	}
	if m.HeartbeatMS < 0 || m.HeartbeatMS > maxHeartbeatMS {
		return fmt.Errorf("hello reply: heartbeat_ms %d out of range [0, %d]", m.HeartbeatMS, maxHeartbeatMS)
	}
	if m.ReconnectSpreadMS < 0 || m.ReconnectSpreadMS > MaxReconnectSpreadMS {
		return fmt.Errorf("hello reply: reconnect_spread_ms %d out of range [0, %d]", m.ReconnectSpreadMS, MaxReconnectSpreadMS)
	}
	return validBrokerList("hello reply", m.Brokers, m.Left)
}

// Heartbeat keeps a presence stream alive (reachability) and carries the
// heartbeat signals, load and a person logged in, which are session status.
// Neither is ever stored in the snapshot.
type Heartbeat struct {
	Seq uint64 `json:"seq"`
	// Load1 is the one-minute load average divided by the CPU count, so 1.0
	// means every core busy.
	Load1 float64 `json:"load1"`
	// UserPresent says whether a person is logged in at the machine.
	UserPresent bool     `json:"user_present"`
	Users       []string `json:"users,omitempty"`
	// CheckInSeq is the agent's newest acknowledged check-in sequence.
	CheckInSeq uint64 `json:"check_in_seq,omitempty"`
	// Leaving, when set, says the agent is about to close its bridge and
	// why (see Leaving). Brokers of earlier releases ignore it and see a
	// clean close.
	Leaving *Leaving `json:"leaving,omitempty"`
}

// Validate implements the Decode contract.
func (m *Heartbeat) Validate() error {
	if m.Leaving != nil {
		if err := m.Leaving.Validate(); err != nil {
			return fmt.Errorf("heartbeat: %w", err)
		}
	}
	if m.Load1 < 0 || m.Load1 > 1e6 {
		return fmt.Errorf("heartbeat: load1 %v out of range", m.Load1)
	}
	if len(m.Users) > 1000 {
		return errors.New("heartbeat: too many users")
	}
	return nil
}

// HeartbeatAck answers a heartbeat so the agent can detect a silent broker.
// CheckIn asks the agent to check in now.
type HeartbeatAck struct {
	Seq     uint64 `json:"seq"`
	CheckIn bool   `json:"check_in,omitempty"`
	// Brokers, when not empty, is the broker list again, as in HelloReply,
	// with Left: a broker sends them on its first ack after the list
	// changed (a broker joined, left, or changed its addresses), so a
	// connected agent learns of it within a heartbeat. Agents of earlier
	// releases ignore both.
	Brokers []BrokerInfo `json:"brokers,omitempty"`
	Left    []string     `json:"left_brokers,omitempty"`
	// Policy, when set, is the fleet's policy for the agent, sent on the
	// first ack after it changed (an empty object: none is set any more),
	// so a connected agent follows a policy set for it within a
	// heartbeat. Brokers before 0.4.0 never send it.
	Policy *AgentPolicy `json:"policy,omitempty"`
}

// Validate implements the Decode contract.
func (m *HeartbeatAck) Validate() error {
	if m.Policy != nil {
		if err := m.Policy.Validate(); err != nil {
			return fmt.Errorf("heartbeat ack: %w", err)
		}
	}
	return validBrokerList("heartbeat ack", m.Brokers, m.Left)
}

// Login binds the caller's key to a technician.
type Login struct {
	Token string `json:"token"`
	Versions
	// Program names the sender in a refusal ("meshctl 0.2.0").
	Program string `json:"program,omitempty"`
}

// Validate implements the Decode contract.
func (m *Login) Validate() error {
	if m.Token == "" {
		return errors.New("login: token is empty")
	}
	return nil
}

// Technician is a technician record as shown to technicians.
type Technician struct {
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	Clients   []string  `json:"clients"` // "*" means every client
	Modes     []string  `json:"modes"`
	Keys      []string  `json:"keys,omitempty"` // peer IDs bound to it
	CreatedAt time.Time `json:"created_at"`
	// Disabled technicians keep their keys, clients and modes, and every
	// request with their keys is refused until they are enabled again.
	Disabled   bool       `json:"disabled,omitempty"`
	DisabledBy string     `json:"disabled_by,omitempty"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
}

// LoginReply answers Login.
type LoginReply struct {
	Error      *Error     `json:"error,omitempty"`
	Technician Technician `json:"technician"`
	Broker     BrokerInfo `json:"broker"`
}

// Request is one technician operation. Args depends on Op.
type Request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
	Versions
}

// Validate implements the Decode contract.
func (m *Request) Validate() error {
	if m.Op == "" {
		return errors.New("request: op is empty")
	}
	return nil
}

// Reply answers a Request.
type Reply struct {
	Error  *Error          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// ValidName checks a machine, client or technician name: 1–64 characters of
// letters, digits, '.', '-' and '_', starting with a letter or digit.
func ValidName(what, s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%s must be 1-64 characters, got %d", what, len(s))
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			i > 0 && (c == '.' || c == '-' || c == '_')
		if !ok {
			return fmt.Errorf("%s %q: only letters, digits, '.', '-' and '_' are allowed, starting with a letter or digit", what, s)
		}
	}
	return nil
}

// Revocation tells an agent that a technician was disabled or removed.
type Revocation struct {
	Technician string   `json:"technician"`
	Keys       []string `json:"keys"`   // the technician's peer IDs
	Reason     string   `json:"reason"` // who did it and when, for the agent's log
}

// maxRevokedKeys bounds the keys one revocation carries: within
// MaxControl.
const maxRevokedKeys = 1000 // a technician's keys at most (store.MaxKeysPerTechnician), about 55 KB

// Validate implements the Decode contract.
func (m *Revocation) Validate() error {
	if len(m.Keys) == 0 || len(m.Keys) > maxRevokedKeys {
		return fmt.Errorf("revocation: %d keys, want 1-%d", len(m.Keys), maxRevokedKeys)
	}
	for _, k := range m.Keys {
		if _, err := peer.Decode(k); err != nil {
			return fmt.Errorf("revocation: key %q: %v", k, err)
		}
	}
	if len(m.Reason) > 512 || len(m.Technician) > 64 {
		return errors.New("revocation: reason or name too long")
	}
	return nil
}
