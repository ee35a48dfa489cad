package release

import (
	"errors"
	"fmt"
	"strings"

	"aead.dev/minisign"
)

// maxKeyText bounds the text ParsePublicKey reads: a .pub file is about
// 110 bytes.
const maxKeyText = 1 << 10

// ParsePublicKey reads a minisign public key: the base64 line ("RW…") or
// a .pub file's text with its comment line.
func ParsePublicKey(s string) (PublicKey, error) {
	if len(s) > maxKeyText {
		return PublicKey{}, errors.New("release: public key: too long for a minisign public key")
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 2 && strings.HasPrefix(lines[0], "untrusted comment:") {
		lines = lines[1:]
	}
	if len(lines) != 1 || lines[0] == "" {
		return PublicKey{}, errors.New("release: public key: want a minisign public key: its base64 line (RW…) or a .pub file")
	}
	var k minisign.PublicKey
	if err := k.UnmarshalText([]byte(strings.TrimSpace(lines[0]))); err != nil {
		return PublicKey{}, fmt.Errorf("release: public key: %w", err)
	}
	return PublicKey{text: k.String(), key: k}, nil
}

// ID returns the key ID as 16 upper-case hex digits, as minisign prints it,
// or "" for the zero PublicKey.
func (k PublicKey) ID() string {
	if k.IsZero() {
		return ""
	}
	return keyID(k.key.ID())
}

// IsZero reports whether k is the zero PublicKey, no key.
func (k PublicKey) IsZero() bool { return k.text == "" }

// Equal reports whether k and o are the same key.
func (k PublicKey) Equal(o PublicKey) bool { return k.text == o.text }

// fileText is the key as a .pub file holds it, in the form the minisign
// tool writes.
func (k PublicKey) fileText() string {
	return "untrusted comment: minisign public key " + k.ID() + "\n" + k.text + "\n"
}

// keyID formats a minisign key ID.
func keyID(id uint64) string { return fmt.Sprintf("%016X", id) }

// SecretKey is a release secret key, decrypted. It lives only in the
// process that signs.
type SecretKey struct {
	key minisign.PrivateKey
}

// Public returns the public key of k.
func (k SecretKey) Public() PublicKey {
	pub := k.key.Public().(minisign.PublicKey)
	return PublicKey{text: pub.String(), key: pub}
}
