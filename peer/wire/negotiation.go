package wire

import (
	"errors"
	"fmt"
	"net/netip"
)

// A session is negotiated through the broker: the technician's Offer and
// the agent's Answer each carry that side's PeerParams (candidates, probe
// credentials, SDP) and its signature over them, so the broker that carries
// them cannot alter them unnoticed. A browser holds no key; the fingerprints
// its Grant names bind its offer instead.

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
