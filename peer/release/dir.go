package release

import (
	"fmt"
	"os"
	"path/filepath"
)

// Dir is a signed release directory as LoadDir reads it, for publishing.
type Dir struct {
	// Manifest is the parsed manifest: checked, but not verified (the
	// broker verifies it against the fleet's key on publish).
	Manifest Manifest
	// ManifestBytes are ManifestFile's bytes, exactly as signed.
	ManifestBytes []byte
	// Signature is SignatureFile's text.
	Signature string
	// KeyID is the ID of the key that made Signature (not verified).
	KeyID string
	// Binaries maps each platform of the manifest to its file's path.
	Binaries map[string]string
}

// LoadDir reads the release Sign wrote in dir: the manifest, its
// signature, and the path of each binary the manifest names. It checks
// that each binary is there with the manifest's size; the hash is checked
// by whoever reads the bytes (the broker, when they are uploaded), so
// LoadDir stays fast for large releases.
func LoadDir(dir string) (Dir, error) {
	body, err := readLimited(filepath.Join(dir, ManifestFile), MaxManifest)
	if err != nil {
		return Dir{}, err
	}
	sig, err := readLimited(filepath.Join(dir, SignatureFile), MaxSignature)
	if err != nil {
		return Dir{}, err
	}
	m, err := Parse(body)
	if err != nil {
		return Dir{}, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	id, err := SignatureKeyID(string(sig))
	if err != nil {
		return Dir{}, fmt.Errorf("%s: %w", filepath.Join(dir, SignatureFile), err)
	}
	d := Dir{Manifest: m, ManifestBytes: body, Signature: string(sig), KeyID: id, Binaries: make(map[string]string, len(m.Binaries))}
	for _, b := range m.Binaries {
		path := filepath.Join(dir, BinaryName(b.Platform))
		fi, err := os.Stat(path)
		if err != nil {
			return Dir{}, fmt.Errorf("release: the manifest names %s: %w", b.Platform, err)
		}
		if fi.Size() != b.Size {
			return Dir{}, fmt.Errorf("release: %s is %d bytes, the manifest says %d: it changed after signing; sign the release again",
				path, fi.Size(), b.Size)
		}
		d.Binaries[b.Platform] = path
	}
	return d, nil
}
