package wire

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

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
	// The agent names files after the session (transcripts) and keys its
	// records by it: nothing but hex digits may get that far.
	if _, err := hex.DecodeString(g.Session); err != nil || len(g.Session) != 32 {
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
