package release

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/readymesh/readymesh/peer/atomicfile"
	"github.com/readymesh/readymesh/peer/wire"
)

// SignOptions says what Sign writes into a manifest besides its binaries.
type SignOptions struct {
	// Version is the release's version. It must be the version the
	// binaries report, since agents check in with it after the update.
	Version string
	// MinAgent is the oldest agent version the release updates from;
	// empty means any.
	MinAgent string
	// Notes are the release notes, at most MaxNotes bytes.
	Notes string
	// NextKey, when not zero, is the key agents and brokers move to once
	// they take this release (a key rotation). It must differ from the
	// signing key.
	NextKey PublicKey
	// Now is the manifest's creation time. Zero means time.Now.
	Now time.Time
}

// Sign makes dir a signed release: it finds the binaries in dir (files
// named BinaryName(platform)), hashes them, and writes ManifestFile and
// SignatureFile, each atomically (a reader sees the old file or the new
// one, never a part). It refuses a dir with no binary, any other
// "sessiond-*" name (a stray file would otherwise be left out of the
// release silently), and a Go binary whose build says it is another
// version or another platform than the one its name and opts claim.
func Sign(dir string, key SecretKey, opts SignOptions) (Manifest, error) {
	m, err := newManifest(key, opts)
	if err != nil {
		return Manifest{}, err
	}
	found, err := findBinaries(dir)
	if err != nil {
		return Manifest{}, err
	}
	for _, f := range found {
		b, err := describe(f.path, f.platform, opts.Version)
		if err != nil {
			return Manifest{}, err
		}
		m.Binaries = append(m.Binaries, b)
	}
	body, sig, err := signManifest(key, &m)
	if err != nil {
		return Manifest{}, err
	}
	if err := writeAtomic(filepath.Join(dir, ManifestFile), body); err != nil {
		return Manifest{}, err
	}
	if err := writeAtomic(filepath.Join(dir, SignatureFile), sig); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// newManifest returns the manifest opts describe, without binaries, and
// checks it before any binary is hashed.
func newManifest(key SecretKey, opts SignOptions) (Manifest, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	m := Manifest{
		Format:   Format,
		Version:  opts.Version,
		MinAgent: opts.MinAgent,
		Notes:    opts.Notes,
		Created:  now.UTC().Truncate(time.Second),
		NextKey:  opts.NextKey.String(),
	}
	if opts.NextKey.Equal(key.Public()) {
		return Manifest{}, fmt.Errorf("release: the next key %s is the signing key: name a new key, or none", opts.NextKey.ID())
	}
	if err := m.checkHead(); err != nil {
		return Manifest{}, fmt.Errorf("release: %w", err)
	}
	return m, nil
}

// found is a binary in a release directory.
type found struct {
	platform, path string
}

// findBinaries returns the binaries in dir, in platform order.
func findBinaries(dir string) ([]found, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	var out []found
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "sessiond-") {
			continue
		}
		p, ok := platformOf(name)
		if !ok {
			return nil, fmt.Errorf("release: %s: not a release binary's name: want sessiond-GOOS-GOARCH (.exe for windows) for one of %s",
				filepath.Join(dir, name), strings.Join(platforms, ", "))
		}
		out = append(out, found{platform: p, path: filepath.Join(dir, name)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("release: %s holds no binaries: want files named like %s and %s", dir, BinaryName("linux/amd64"), BinaryName("windows/amd64"))
	}
	return out, nil
}

// describe hashes the binary at path and checks what its build says.
func describe(path, platform, version string) (wire.ReleaseBinary, error) {
	f, err := os.Open(path)
	if err != nil {
		return wire.ReleaseBinary{}, fmt.Errorf("release: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return wire.ReleaseBinary{}, fmt.Errorf("release: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() <= 0 || fi.Size() > wire.MaxBlob {
		return wire.ReleaseBinary{}, fmt.Errorf("release: %s: want a regular file of 1 byte to %d MiB", path, wire.MaxBlob>>20)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, wire.MaxBlob+1))
	if err != nil {
		return wire.ReleaseBinary{}, fmt.Errorf("release: read %s: %w", path, err)
	}
	if n != fi.Size() {
		return wire.ReleaseBinary{}, fmt.Errorf("release: %s changed while it was read: sign again once it is complete", path)
	}
	if err := checkBuild(f, platform, version); err != nil {
		return wire.ReleaseBinary{}, fmt.Errorf("release: %s: %w", path, err)
	}
	return wire.ReleaseBinary{Platform: platform, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// signManifest encodes m, checks the bytes as an agent will, and signs
// them. The signature is checked too: Sign never writes a release that
// Verify would refuse.
func signManifest(key SecretKey, m *Manifest) (body, sig []byte, err error) {
	body, err = m.encode()
	if err != nil {
		return nil, nil, err
	}
	// Pre-hashed (BLAKE2b-512), as the minisign tool signs by default.
	r := minisign.NewReader(bytes.NewReader(body))
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, nil, fmt.Errorf("release: sign: %w", err)
	}
	pub := key.Public()
	sig = r.SignWithComments(key.key, "readymesh release "+m.Version, "signature from readymesh release key "+pub.ID())
	if _, err := Verify(pub, body, string(sig)); err != nil {
		return nil, nil, fmt.Errorf("release: the signed manifest does not check: %w", err)
	}
	return body, sig, nil
}

// writeAtomic replaces path with data (mode 0644), never leaving it
// half-written.
func writeAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("release: write %s: %w", path, err)
	}
	return nil
}
