package release

import (
	"errors"
	"fmt"

	"aead.dev/minisign"
)

// Verify checks signature (minisign text) over manifest with key, then
// parses and checks the manifest. A signature by another key is
// ErrWrongKey, a bad one ErrBadSignature, a bad manifest ErrMalformed.
//
// The manifest is checked only once its signature holds, so what an
// unsigned manifest says is never acted on. Both of minisign's
// signature algorithms verify: the pre-hashed one Sign and today's
// minisign tool write, and the legacy one older versions wrote.
func Verify(key PublicKey, manifest []byte, signature string) (Manifest, error) {
	if key.IsZero() {
		return Manifest{}, errors.New("release: no release key to verify with")
	}
	id, err := SignatureKeyID(signature)
	if err != nil {
		return Manifest{}, err
	}
	if id != key.ID() {
		return Manifest{}, fmt.Errorf("%w: key %s signed it, want key %s", ErrWrongKey, id, key.ID())
	}
	if !minisign.Verify(key.key, manifest, []byte(signature)) {
		return Manifest{}, fmt.Errorf("%w with key %s: the manifest or its signature was changed", ErrBadSignature, key.ID())
	}
	return Parse(manifest)
}

// SignatureKeyID returns the ID of the key that made signature (16
// upper-case hex digits), without verifying it: a hint for messages,
// such as which key a release was signed with before it is checked.
func SignatureKeyID(signature string) (string, error) {
	if len(signature) > MaxSignature {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadSignature, MaxSignature)
	}
	var s minisign.Signature
	if err := s.UnmarshalText([]byte(signature)); err != nil {
		return "", fmt.Errorf("%w: not a minisign signature: %v", ErrBadSignature, err)
	}
	return keyID(s.KeyID), nil
}
