package rtc

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"
)

// MaxSDPSize bounds the session descriptions Answer and Accept take. Ours
// are 1–3 KiB (two ICE credentials, a fingerprint, a few candidates); the
// bound keeps a hostile peer from making the parser chew on megabytes.
const MaxSDPSize = 64 << 10

// digestLen is the length in bytes of each hash a fingerprint may use
// (RFC 8122; md5 and md2 are not accepted).
var digestLen = map[string]int{
	"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64,
}

// Fingerprints returns the DTLS certificate fingerprints an SDP declares
// (its a=fingerprint values, such as "sha-256 4A:AD:…"), session-level
// first, without repeats. DTLS refuses a peer whose certificate matches
// none of them, so a signalling layer that authenticates the SDP's sender
// and binds these values to it has authenticated the data channels too.
// It fails for malformed SDP, a malformed fingerprint, or none at all.
func Fingerprints(desc string) ([]string, error) {
	parsed, err := parseSDP(desc)
	if err != nil {
		return nil, err
	}
	return fingerprints(parsed)
}

func parseSDP(desc string) (*sdp.SessionDescription, error) {
	if len(desc) > MaxSDPSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrSDP, len(desc), MaxSDPSize)
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(desc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSDP, err)
	}
	return &parsed, nil
}

func fingerprints(parsed *sdp.SessionDescription) ([]string, error) {
	var out []string
	add := func(attrs []sdp.Attribute) error {
		for _, a := range attrs {
			if a.Key != "fingerprint" {
				continue
			}
			fp := strings.TrimSpace(a.Value)
			if err := checkFingerprint(fp); err != nil {
				return err
			}
			if !slices.Contains(out, fp) {
				out = append(out, fp)
			}
		}
		return nil
	}
	if err := add(parsed.Attributes); err != nil {
		return nil, err
	}
	for _, m := range parsed.MediaDescriptions {
		if err := add(m.Attributes); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no DTLS fingerprint", ErrSDP)
	}
	return out, nil
}

// checkFingerprint checks "hash-func XX:XX:…" with as many bytes as the
// hash function produces.
func checkFingerprint(fp string) error {
	alg, value, ok := strings.Cut(fp, " ")
	if !ok {
		return fmt.Errorf("%w: fingerprint %.80q is not \"hash-func value\"", ErrSDP, fp)
	}
	n, known := digestLen[strings.ToLower(alg)]
	if !known {
		return fmt.Errorf("%w: fingerprint hash %.20q not accepted", ErrSDP, alg)
	}
	if len(value) != 3*n-1 {
		return fmt.Errorf("%w: %s fingerprint has %d characters, want %d", ErrSDP, alg, len(value), 3*n-1)
	}
	for i := 0; i < len(value); i += 3 {
		if _, err := hex.DecodeString(value[i : i+2]); err != nil {
			return fmt.Errorf("%w: %s fingerprint is not colon-separated hex", ErrSDP, alg)
		}
		if i+2 < len(value) && value[i+2] != ':' {
			return fmt.Errorf("%w: %s fingerprint is not colon-separated hex", ErrSDP, alg)
		}
	}
	return nil
}

// checkRemote checks a peer's SDP before pion sees it: bounded, parsable,
// with a data-channel section and fingerprints.
func checkRemote(desc string) error {
	parsed, err := parseSDP(desc)
	if err != nil {
		return err
	}
	hasData := slices.ContainsFunc(parsed.MediaDescriptions, func(m *sdp.MediaDescription) bool {
		return m.MediaName.Media == "application"
	})
	if !hasData {
		return fmt.Errorf("%w: no data-channel (m=application) section", ErrSDP)
	}
	_, err = fingerprints(parsed)
	return err
}
