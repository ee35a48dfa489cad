package mesh

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/wire"
)

// grantContext separates grant signatures from every other signature a
// broker key makes.
const grantContext = "readymesh session grant v1\n"

// paramsContext separates a technician's signature over its session
// parameters (the SDP's DTLS fingerprint among them).
const paramsContext = "readymesh session params v1\n"

// Grant errors. The agent refuses an offer or a connection with one of
// these, wrapped with the detail.
var (
	ErrGrantForged    = errors.New("grant signature is not valid")
	ErrGrantIssuer    = errors.New("grant issuer is not a broker this agent trusts")
	ErrGrantExpired   = errors.New("grant has expired")
	ErrGrantMachine   = errors.New("grant is for another machine")
	ErrGrantUsed      = errors.New("grant was already used")
	ErrGrantPeer      = errors.New("peer is not the technician the grant names")
	ErrGrantMode      = errors.New("grant mode does not allow this")
	ErrUnknownSession = errors.New("no pending session with this ID")
)

// NewSessionID returns a random session ID: 32 hex digits.
func NewSessionID() string { return randHex(16) }

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("mesh: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// IssueGrant fills in a grant's session ID, nonce, issuer and times and
// signs it with the broker's key.
func IssueGrant(key crypto.PrivKey, g wire.Grant, now time.Time, ttl time.Duration) (wire.SignedGrant, wire.Grant, error) {
	issuer, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return wire.SignedGrant{}, g, fmt.Errorf("grant: issuer: %w", err)
	}
	g.Version, g.Issuer = 1, issuer.String()
	if g.Session == "" {
		g.Session = NewSessionID()
	}
	g.Nonce = randHex(16)
	g.IssuedAt, g.Expires = now.UTC(), now.Add(ttl).UTC()
	if err := g.Validate(); err != nil {
		return wire.SignedGrant{}, g, fmt.Errorf("grant: %w", err)
	}
	body, err := json.Marshal(g)
	if err != nil {
		return wire.SignedGrant{}, g, fmt.Errorf("grant: %w", err)
	}
	sig, err := key.Sign(append([]byte(grantContext), body...))
	if err != nil {
		return wire.SignedGrant{}, g, fmt.Errorf("grant: sign: %w", err)
	}
	return wire.SignedGrant{Body: body, Sig: sig}, g, nil
}

// VerifyGrant checks a signed grant for machine at time now: signed by its
// issuer, the issuer trusted, not expired, naming this machine. It does
// not check single use; the Listener does that.
func VerifyGrant(sg wire.SignedGrant, machine peer.ID, trusted func(peer.ID) bool, now time.Time) (wire.Grant, error) {
	var g wire.Grant
	if err := wire.Decode(sg.Body, &g); err != nil {
		return g, fmt.Errorf("%w: %v", ErrGrantForged, err)
	}
	issuer, err := peer.Decode(g.Issuer)
	if err != nil {
		return g, fmt.Errorf("%w: issuer: %v", ErrGrantForged, err)
	}
	if err := verifySig(issuer, []byte(grantContext), sg.Body, sg.Sig); err != nil {
		return g, err
	}
	if trusted == nil || !trusted(issuer) {
		return g, fmt.Errorf("%w: %s", ErrGrantIssuer, issuer)
	}
	if g.Machine != machine.String() {
		return g, fmt.Errorf("%w: %s", ErrGrantMachine, g.Machine)
	}
	if !now.Before(g.Expires) {
		return g, fmt.Errorf("%w: at %s", ErrGrantExpired, g.Expires.Format(time.RFC3339))
	}
	return g, nil
}

// SignParams signs a side's session parameters with its identity key.
func SignParams(key crypto.PrivKey, p wire.PeerParams) ([]byte, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return key.Sign(append([]byte(paramsContext), body...))
}

// VerifyParams checks that signer signed p.
func VerifyParams(signer peer.ID, p wire.PeerParams, sig []byte) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return verifySig(signer, []byte(paramsContext), body, sig)
}

func verifySig(signer peer.ID, ctx, body, sig []byte) error {
	pub, err := signer.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: no public key in %s: %v", ErrGrantForged, signer, err)
	}
	ok, err := pub.Verify(append(append([]byte(nil), ctx...), body...), sig)
	if err != nil || !ok {
		return fmt.Errorf("%w (signer %s)", ErrGrantForged, signer)
	}
	return nil
}

// CheckResult is the technician's check of the broker's answer: the grant
// is signed by issuer (when known) and names this technician, and the
// agent's parameters are signed by the machine the grant names. It returns
// the grant and the machine.
func CheckResult(res *wire.SessionResult, tech, issuer peer.ID) (wire.Grant, peer.ID, error) {
	var g wire.Grant
	if err := wire.Decode(res.Grant.Body, &g); err != nil {
		return g, "", fmt.Errorf("grant from broker: %w", err)
	}
	if issuer != "" {
		if g.Issuer != issuer.String() {
			return g, "", fmt.Errorf("%w: issued by %s, not by the broker asked (%s)", ErrGrantIssuer, g.Issuer, issuer)
		}
		if err := verifySig(issuer, []byte(grantContext), res.Grant.Body, res.Grant.Sig); err != nil {
			return g, "", err
		}
	}
	if g.Technician != tech.String() {
		return g, "", fmt.Errorf("the broker granted the session to %s, not to this key", g.Technician)
	}
	machine, err := peer.Decode(g.Machine)
	if err != nil {
		return g, "", fmt.Errorf("grant machine: %w", err)
	}
	if err := VerifyParams(machine, res.Answer, res.AnswerSig); err != nil {
		return g, "", fmt.Errorf("the answer is not the machine's: %w", err)
	}
	return g, machine, nil
}
