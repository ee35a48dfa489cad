package wire

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// Live-session protocols. A technician asks its broker for a session with
// OpSessionOpen on ProtoTech; the broker checks scopes and readiness, signs
// a Grant and carries the technician's Offer to the agent on ProtoSession;
// the agent's Answer comes back the same way. Both sides may then open a
// ProtoRelay stream to that broker, which splices the two into the relayed
// path.
const (
	// ProtoSession: broker → agent, one Offer and one Answer per stream.
	ProtoSession protocol.ID = "/readymesh/session/1.0.0"
	// ProtoRelay: technician or agent → broker, one RelayHello, one
	// RelayReady, then relay frames both ways for the session's life.
	ProtoRelay protocol.ID = "/readymesh/relay/1.0.0"
	// ProtoSessionStatus: agent → broker, one SessionStatus per stream
	// whenever the agent's live sessions change.
	ProtoSessionStatus protocol.ID = "/readymesh/session-status/1.0.0"
)

// OpSessionOpen asks for a live session: SessionArgs → SessionResult.
// OpSessionICE returns the broker's STUN port and TURN credentials, which a
// WebRTC offerer needs before it gathers: no args → ICEInfo.
const (
	OpSessionOpen = "session.open"
	OpSessionICE  = "session.ice"
)

// ICEInfo is what a WebRTC peer needs to use the broker's STUN and TURN.
type ICEInfo struct {
	STUNPort     int    `json:"stun_port"`
	TURNUser     string `json:"turn_user,omitempty"`
	TURNPassword string `json:"turn_password,omitempty"`
}

// Transports a technician may ask for.
const (
	TransportAuto   = "auto"   // relay or direct, whichever is ready first; upgrade to direct
	TransportQUIC   = "quic"   // direct QUIC only; fail when punching fails
	TransportWebRTC = "webrtc" // a WebRTC data channel, ICE with the broker's STUN and TURN
	TransportRelay  = "relay"  // the broker's relay only
)

// Paths a session can use, as shown to technicians.
const (
	PathDirectQUIC   = "direct-quic"
	PathDirectWebRTC = "direct-webrtc"
	PathRelayed      = "relayed"      // QUIC through the broker's relay stream
	PathRelayedTURN  = "relayed-turn" // WebRTC through the broker's TURN relay
)

// SessionArgs asks for a live session to a machine.
type SessionArgs struct {
	Machine   string     `json:"machine"` // ID, name or client/name
	Mode      string     `json:"mode"`
	Transport string     `json:"transport"`
	Params    PeerParams `json:"params"`
	// Sig is the technician's signature over Params (see mesh.SignParams).
	Sig []byte `json:"sig"`
	// StunToken ties a STUN binding request the technician sent at the
	// same moment to this request (see mesh.Observer).
	StunToken string `json:"stun_token,omitempty"`
}

// Validate implements the Decode contract.
func (a *SessionArgs) Validate() error {
	if len(a.Sig) == 0 || len(a.Sig) > 256 {
		return errors.New("session parameters are not signed")
	}
	if len(a.StunToken) > 64 {
		return errors.New("stun token too long")
	}
	if a.Machine == "" {
		return errors.New("machine is empty")
	}
	switch a.Mode {
	case ModeReadOnly, ModeInteractive, ModeElevated:
	default:
		return fmt.Errorf("mode %q is not read-only, interactive or elevated", a.Mode)
	}
	switch a.Transport {
	case TransportAuto, TransportQUIC, TransportWebRTC, TransportRelay:
	default:
		return fmt.Errorf("transport %q is not auto, quic, webrtc or relay", a.Transport)
	}
	if a.Transport == TransportWebRTC && a.Params.SDP == "" {
		return errors.New("transport webrtc needs an SDP offer")
	}
	return a.Params.Validate()
}

// SessionResult answers OpSessionOpen.
type SessionResult struct {
	Grant   SignedGrant `json:"grant"`
	Session string      `json:"session"`
	Machine string      `json:"machine"` // peer ID
	Name    string      `json:"name"`    // client/name
	Answer  PeerParams  `json:"answer"`
	// AnswerSig is the agent's signature over Answer.
	AnswerSig []byte `json:"answer_sig,omitempty"`
	// Relay names the broker that relays, when it will.
	Relay     bool   `json:"relay"`
	RelayName string `json:"relay_name,omitempty"`
	// STUNPort and TURN credentials of the broker.
	STUNPort     int    `json:"stun_port,omitempty"`
	TURNUser     string `json:"turn_user,omitempty"`
	TURNPassword string `json:"turn_password,omitempty"`
	// Redirect, when set, is the broker holding the machine's bridge: ask
	// it instead.
	Redirect *BrokerInfo `json:"redirect,omitempty"`
}

// SessionInfo is one live session as the agent reports it.
type SessionInfo struct {
	Session    string    `json:"session"`
	Technician string    `json:"technician"`
	Mode       string    `json:"mode"`
	Path       string    `json:"path"`
	Remote     string    `json:"remote,omitempty"`
	Started    time.Time `json:"started"`
	// InputPaused: the person at the machine paused remote input.
	InputPaused bool `json:"input_paused,omitempty"`
	// State is "active", or "waiting-for-approval" while the person at
	// the machine has not answered the consent request.
	State string `json:"state,omitempty"`
	// Shared: the session has a terminal open that other technicians may
	// watch (read-only) by naming this session.
	Shared bool `json:"shared,omitempty"`
}

// SessionStatus is the agent's list of live sessions.
type SessionStatus struct {
	Sessions []SessionInfo `json:"sessions"`
}

// Validate bounds the list.
func (s *SessionStatus) Validate() error {
	if len(s.Sessions) > 64 {
		return errors.New("more than 64 live sessions")
	}
	return nil
}
