package wire

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
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

// Candidate kinds, in ICE's terms.
const (
	CandHost  = "host"  // an address of one of the peer's interfaces
	CandSrflx = "srflx" // the address the broker's STUN server saw
)

// Limits on signalling.
const (
	MaxCandidates = 32
	MaxSDP        = 32 << 10
)

// Candidate is one address where a peer's session socket may be reached.
type Candidate struct {
	Kind string `json:"kind"`
	Addr string `json:"addr"` // ip:port
}

// Validate checks the candidate's form.
func (c *Candidate) Validate() error {
	if c.Kind != CandHost && c.Kind != CandSrflx {
		return fmt.Errorf("candidate kind %q is not host or srflx", c.Kind)
	}
	ap, err := netip.ParseAddrPort(c.Addr)
	if err != nil || ap.Port() == 0 {
		return fmt.Errorf("candidate address %q is not ip:port", c.Addr)
	}
	return nil
}

// PeerParams is one side's part of the negotiation.
type PeerParams struct {
	Candidates []Candidate `json:"candidates,omitempty"`
	// Ufrag and Pwd authenticate hole-punching probes, as in ICE: each side
	// answers only probes that carry its ufrag and its password's MAC.
	Ufrag string `json:"ufrag,omitempty"`
	Pwd   string `json:"pwd,omitempty"`
	// SDP is the WebRTC offer or answer (transport webrtc only).
	SDP string `json:"sdp,omitempty"`
}

// Validate bounds the negotiation.
func (p *PeerParams) Validate() error {
	if len(p.Candidates) > MaxCandidates {
		return fmt.Errorf("%d candidates, at most %d", len(p.Candidates), MaxCandidates)
	}
	for i := range p.Candidates {
		if err := p.Candidates[i].Validate(); err != nil {
			return err
		}
	}
	if len(p.Ufrag) > 64 || len(p.Pwd) > 128 {
		return errors.New("probe credentials too long")
	}
	if (p.Ufrag == "") != (p.Pwd == "") {
		return errors.New("probe ufrag and pwd go together")
	}
	if len(p.SDP) > MaxSDP {
		return fmt.Errorf("sdp of %d bytes, at most %d", len(p.SDP), MaxSDP)
	}
	return nil
}

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

// SignedGrant is a session grant as the broker signed it: Body is the
// JSON of a Grant, Sig the issuing broker's signature over it. Keeping the
// signed bytes as they were signed spares both sides a canonical form.
type SignedGrant struct {
	Body []byte `json:"body"`
	Sig  []byte `json:"sig"`
}

// Grant lets one technician open one session to one machine in one mode
// before it expires, once. The agent checks every field.
type Grant struct {
	Version    int       `json:"v"`
	Session    string    `json:"session"`
	Technician string    `json:"technician"` // peer ID
	Machine    string    `json:"machine"`    // peer ID
	Mode       string    `json:"mode"`
	Issuer     string    `json:"issuer"` // broker peer ID
	IssuedAt   time.Time `json:"issued_at"`
	Expires    time.Time `json:"expires"`
	Nonce      string    `json:"nonce"`
	// TechnicianName is for logs and the session status only.
	TechnicianName string `json:"technician_name,omitempty"`
	// Fingerprints, set only for a session from the web console, are the
	// DTLS certificate fingerprints of the technician's browser, as its
	// offer SDP declares them. A browser holds no technician key to sign
	// its parameters with; the issuing broker authenticated the
	// technician's web login and vouches for the browser by binding its
	// fingerprints here. The agent accepts such a grant only for WebRTC
	// and only with an offer declaring exactly these fingerprints, so DTLS
	// admits that browser and no other peer.
	Fingerprints []string `json:"fingerprints,omitempty"`
}

// Validate checks the grant's form; mesh checks its meaning.
func (g *Grant) Validate() error {
	if g.Version != 1 {
		return fmt.Errorf("grant version %d is not 1", g.Version)
	}
	if len(g.Session) != 32 {
		return errors.New("grant session ID is not 32 hex digits")
	}
	for _, id := range []string{g.Technician, g.Machine, g.Issuer} {
		if _, err := peer.Decode(id); err != nil {
			return fmt.Errorf("grant peer ID %q: %v", id, err)
		}
	}
	switch g.Mode {
	case ModeReadOnly, ModeInteractive, ModeElevated:
	default:
		return fmt.Errorf("grant mode %q is unknown", g.Mode)
	}
	if g.Nonce == "" || g.Expires.IsZero() {
		return errors.New("grant has no nonce or no expiry")
	}
	if len(g.Fingerprints) > 4 {
		return errors.New("grant names more than 4 fingerprints")
	}
	for _, f := range g.Fingerprints {
		if f == "" || len(f) > 200 {
			return errors.New("grant fingerprint empty or too long")
		}
	}
	return nil
}

// Offer is what the broker carries to the agent.
type Offer struct {
	Grant     SignedGrant `json:"grant"`
	Transport string      `json:"transport"`
	// Params are the technician's candidates, probe credentials and SDP.
	Params PeerParams `json:"params"`
	// ParamsSig is the technician's signature over Params' JSON, so the
	// agent knows the SDP's DTLS fingerprint is the granted technician's.
	ParamsSig []byte `json:"params_sig,omitempty"`
	// Observed are the technician's server-reflexive addresses as the
	// broker's STUN server saw them: added by the broker, so outside the
	// technician's signature.
	Observed []Candidate `json:"observed,omitempty"`
	// PunchDelayMs tells the agent how long to wait before probing, so its
	// first probes meet the technician's (about half the broker's round
	// trip to the technician).
	PunchDelayMs int `json:"punch_delay_ms"`
	// Relay says the broker will relay this session if the agent connects.
	Relay bool `json:"relay"`
	// STUN and TURN are the broker's STUN/TURN port and TURN credentials.
	STUNPort     int    `json:"stun_port,omitempty"`
	TURNUser     string `json:"turn_user,omitempty"`
	TURNPassword string `json:"turn_password,omitempty"`
}

// Validate implements the Decode contract.
func (o *Offer) Validate() error {
	if len(o.Grant.Body) == 0 || len(o.Grant.Sig) == 0 {
		return errors.New("offer has no grant")
	}
	if len(o.Observed) > 4 {
		return errors.New("more than 4 observed candidates")
	}
	for i := range o.Observed {
		if err := o.Observed[i].Validate(); err != nil {
			return err
		}
	}
	if o.PunchDelayMs < 0 || o.PunchDelayMs > 10_000 {
		return errors.New("punch delay out of range")
	}
	return o.Params.Validate()
}

// Answer is the agent's reply to an Offer.
type Answer struct {
	Error  *Error     `json:"error,omitempty"`
	Params PeerParams `json:"params"`
	// ParamsSig is the agent's signature over Params: the technician
	// checks the answer (WebRTC's DTLS fingerprint among it) came from the
	// machine the grant names, not from a broker in between.
	ParamsSig []byte `json:"params_sig,omitempty"`
}

// Validate implements the Decode contract.
func (a *Answer) Validate() error { return a.Params.Validate() }

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

// RelayHello opens one side of a relayed session.
type RelayHello struct {
	Session string `json:"session"`
}

// Validate implements the Decode contract.
func (h *RelayHello) Validate() error {
	if len(h.Session) != 32 {
		return errors.New("relay session ID is not 32 hex digits")
	}
	return nil
}

// RelayReady tells a relay side that both sides are joined (or why not).
type RelayReady struct {
	Error *Error `json:"error,omitempty"`
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

// ProtoTranscript: agent → broker, one Transcript per stream after a
// session ends (→ Reply).
const ProtoTranscript protocol.ID = "/readymesh/transcript/1.0.0"

// OpTranscript reads a session's transcripts: TranscriptArgs → []Transcript.
const OpTranscript = "transcript"

// MaxTranscript bounds one uploaded transcript (16 MiB).
const MaxTranscript = 16 << 20

// Transcript is one terminal's recording (asciicast v2).
type Transcript struct {
	Session string    `json:"session"`
	Name    string    `json:"name"` // SESSION-N.cast
	Machine string    `json:"machine,omitempty"`
	At      time.Time `json:"at"`
	Cast    []byte    `json:"cast"` // base64 in JSON: terminal output is any bytes
}

// Validate implements the Decode contract.
func (t *Transcript) Validate() error {
	if len(t.Session) != 32 || t.Name == "" || len(t.Name) > 64 || strings.ContainsAny(t.Name, "/\\") {
		return errors.New("transcript: bad session or name")
	}
	return nil
}

// TranscriptArgs names a session (its ID or first digits).
type TranscriptArgs struct {
	Session string `json:"session"`
}

// Validate implements the Decode contract.
func (a *TranscriptArgs) Validate() error {
	if len(a.Session) < 6 || len(a.Session) > 32 {
		return errors.New("session: give at least its first 6 digits")
	}
	return nil
}
