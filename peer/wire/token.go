package wire

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Token kinds, the prefix of a token's text.
const (
	KindEnroll = "rme1" // enrolment token for an agent
	KindLogin  = "rml1" // login token or admin credential for a technician
)

// Token is what an enrolment or login token carries: a secret for the broker
// and the broker's identity and addresses, so the holder can dial and pin the
// broker without any other configuration. The broker stores only the
// secret's hash.
type Token struct {
	Kind   string     `json:"-"`
	Secret string     `json:"s"`
	Broker BrokerInfo `json:"b"`
	// ReleaseKey is the fleet's release public key (minisign, "RW…") in
	// an enrolment token: the agent pins it and installs only releases
	// it signed. Empty when the fleet had none when the token was made.
	ReleaseKey string `json:"rk,omitempty"`
}

// ErrBadToken is returned (wrapped) for a token that cannot be parsed.
var ErrBadToken = errors.New("not a readymesh token")

// NewSecret returns 32 random bytes, hex-encoded.
func NewSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("wire: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// HashSecret returns the hex sha256 of a secret, the form a broker stores.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// String encodes the token as KIND_BASE64URL(JSON).
func (t Token) String() string {
	body, _ := json.Marshal(t)
	return t.Kind + "_" + base64.RawURLEncoding.EncodeToString(body)
}

// ParseToken decodes a token of the given kind.
func ParseToken(kind, s string) (Token, error) {
	s = strings.TrimSpace(s)
	prefix, body, ok := strings.Cut(s, "_")
	if !ok || len(s) > MaxControl {
		return Token{}, fmt.Errorf("%w: expected %s_…", ErrBadToken, kind)
	}
	if prefix != kind {
		return Token{}, fmt.Errorf("%w: this is a %q token, expected %q", ErrBadToken, prefix, kind)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	var t Token
	if err := json.Unmarshal(raw, &t); err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	t.Kind = kind
	switch {
	case len(t.Secret) != 64:
		return Token{}, fmt.Errorf("%w: bad secret", ErrBadToken)
	case t.Broker.PeerID == "" || len(t.Broker.Addrs) == 0:
		return Token{}, fmt.Errorf("%w: it names no broker", ErrBadToken)
	}
	return t, nil
}
