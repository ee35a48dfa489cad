package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// Parse parses and checks a manifest without verifying it (the broker's
// view before it checks the signature, meshctl's show). It is strict:
// unknown fields, trailing data, an unknown format and every value out of
// bounds are refused, so what agents and brokers accept is exactly what
// Sign writes.
func Parse(manifest []byte) (Manifest, error) {
	if len(manifest) == 0 || len(manifest) > MaxManifest {
		return Manifest{}, fmt.Errorf("%w: must be 1 byte to %d KiB", ErrMalformed, MaxManifest>>10)
	}
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Manifest{}, fmt.Errorf("%w: data after the manifest", ErrMalformed)
	}
	if err := m.check(); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return m, nil
}

// check checks every field of m.
func (m *Manifest) check() error {
	if err := m.checkHead(); err != nil {
		return err
	}
	return checkBinaries(m.Binaries)
}

// checkHead checks the fields Sign takes from its options: all but the
// binaries.
func (m *Manifest) checkHead() error {
	if m.Format != Format {
		return fmt.Errorf("format %q, want %q", m.Format, Format)
	}
	if err := checkVersion(m.Version); err != nil {
		return err
	}
	if m.MinAgent != "" {
		if err := checkVersion(m.MinAgent); err != nil {
			return fmt.Errorf("min_agent_version: %w", err)
		}
		if CompareVersions(m.MinAgent, m.Version) > 0 {
			return fmt.Errorf("min_agent_version %s is newer than the release %s: no agent could install it", m.MinAgent, m.Version)
		}
	}
	if err := checkNotes(m.Notes); err != nil {
		return err
	}
	if m.Created.IsZero() {
		return errors.New("created is missing")
	}
	return checkNextKey(m.NextKey)
}

// checkVersion checks a version a manifest names: valid on the wire, and
// parsable, since agents refuse downgrades and rollouts skip machines
// already on it by CompareVersions.
func checkVersion(v string) error {
	if err := wire.ValidVersion(v); err != nil {
		return err
	}
	if !ComparableVersion(v) {
		return fmt.Errorf("version %q cannot be ordered: want dot-separated numbers such as 1.4.0, then optionally -PRERELEASE and +BUILD", v)
	}
	return nil
}

// checkNotes bounds the notes and keeps terminal control sequences out of
// meshctl's output: only newline and tab among the control characters.
func checkNotes(notes string) error {
	if len(notes) > MaxNotes {
		return fmt.Errorf("notes: %d bytes, at most %d", len(notes), MaxNotes)
	}
	if i := strings.IndexFunc(notes, func(r rune) bool {
		return (r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0) && r != '\n' && r != '\t'
	}); i >= 0 {
		return fmt.Errorf("notes: a control character at byte %d (only newlines and tabs are allowed)", i)
	}
	return nil
}

// checkNextKey checks that next, when set, is a public key's base64 line.
func checkNextKey(next string) error {
	if next == "" {
		return nil
	}
	k, err := ParsePublicKey(next)
	if err != nil {
		return fmt.Errorf("next_key: %w", err)
	}
	if k.String() != next {
		return errors.New("next_key: want the key's base64 line alone")
	}
	return nil
}

// checkBinaries checks the list of binaries: 1 to MaxBinaries, each of a
// known platform named once, with a SHA-256 and a size an agent may
// download.
func checkBinaries(bins []wire.ReleaseBinary) error {
	if len(bins) == 0 || len(bins) > MaxBinaries {
		return fmt.Errorf("binaries: %d, want 1 to %d", len(bins), MaxBinaries)
	}
	for i, b := range bins {
		if err := checkBinary(b); err != nil {
			return fmt.Errorf("binaries[%d]: %w", i, err)
		}
		for _, earlier := range bins[:i] {
			if earlier.Platform == b.Platform {
				return fmt.Errorf("binaries[%d]: platform %s named twice", i, b.Platform)
			}
		}
	}
	return nil
}

func checkBinary(b wire.ReleaseBinary) error {
	switch {
	case !knownPlatform(b.Platform):
		return fmt.Errorf("unknown platform %q, want one of %s", b.Platform, strings.Join(platforms, ", "))
	case !isHex64(b.SHA256):
		return errors.New("sha256 must be 64 lower-case hex digits")
	case b.Size <= 0 || b.Size > wire.MaxBlob:
		return fmt.Errorf("size %d, want 1 byte to %d MiB", b.Size, wire.MaxBlob>>20)
	case b.Have != 0:
		return errors.New("have is a broker's count, not part of a manifest")
	}
	return nil
}

// isHex64 reports whether s is 64 lower-case hex digits.
func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// encode returns the manifest's bytes as Sign writes them: indented JSON
// with a final newline, so a person can read what was signed.
func (m *Manifest) encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("release: encode the manifest: %w", err)
	}
	return append(b, '\n'), nil
}
