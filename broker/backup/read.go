package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrCorrupt marks a backup file that fails a check: truncated, altered,
// or not a backup at all.
var ErrCorrupt = errors.New("backup file is corrupt or incomplete")

// staged is a backup's parts read into temporary files, each checked
// against the manifest and synced.
type staged struct {
	manifest Manifest
	files    map[string]string // part name → temporary file
}

// remove deletes the temporary files.
func (s *staged) remove() {
	for _, f := range s.files {
		os.Remove(f)
	}
}

// stage reads the backup at path into temporary files in dir. On error
// nothing is left in dir.
func stage(path, dir string) (*staged, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := &staged{files: map[string]string{}}
	if err := s.read(tar.NewReader(f), dir); err != nil {
		s.remove()
		return nil, err
	}
	return s, nil
}

// read reads the manifest, then every part it lists.
func (s *staged) read(tr *tar.Reader, dir string) error {
	raw, err := readManifest(tr)
	if err != nil {
		return err
	}
	if s.manifest, err = decodeManifest(raw); err != nil {
		if errors.Is(err, ErrNewerFormat) {
			return err
		}
		return corrupt(err)
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return corrupt(err)
		}
		if err := s.readPart(tr, hdr, dir); err != nil {
			return err
		}
	}
	for _, p := range s.manifest.Parts {
		if _, ok := s.files[p.Name]; !ok {
			return corrupt(fmt.Errorf("part %s is listed in the manifest but missing: the file ends early", p.Name))
		}
	}
	return nil
}

// readManifest reads the first entry, which must be the manifest.
func readManifest(tr *tar.Reader) ([]byte, error) {
	hdr, err := tr.Next()
	if err != nil {
		return nil, corrupt(fmt.Errorf("no manifest: %w", err))
	}
	if hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg {
		return nil, corrupt(fmt.Errorf("the first entry is %q, not %s: not a broker backup", hdr.Name, ManifestName))
	}
	if hdr.Size > maxManifest {
		return nil, corrupt(fmt.Errorf("manifest of %d bytes, at most %d", hdr.Size, maxManifest))
	}
	raw, err := io.ReadAll(tr)
	if err != nil {
		return nil, corrupt(fmt.Errorf("manifest: %w", err))
	}
	return raw, nil
}

// readPart copies one entry into a temporary file in dir and checks its
// size and checksum against the manifest.
func (s *staged) readPart(tr *tar.Reader, hdr *tar.Header, dir string) error {
	p := s.manifest.part(hdr.Name)
	switch {
	case p == nil:
		return corrupt(fmt.Errorf("entry %q is not in the manifest", hdr.Name))
	case s.files[hdr.Name] != "":
		return corrupt(fmt.Errorf("entry %q appears twice", hdr.Name))
	case hdr.Typeflag != tar.TypeReg:
		return corrupt(fmt.Errorf("entry %q is not a regular file", hdr.Name))
	case hdr.Size != p.Size:
		return corrupt(fmt.Errorf("part %s is %d bytes, the manifest says %d", p.Name, hdr.Size, p.Size))
	}
	f, err := os.CreateTemp(dir, ".restore-"+p.Name+"-*")
	if err != nil {
		return err
	}
	s.files[p.Name] = f.Name()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), tr)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return corrupt(fmt.Errorf("part %s: %d of %d bytes: the file ends early", p.Name, n, p.Size))
	case err != nil:
		return fmt.Errorf("part %s: %w", p.Name, err)
	case hex.EncodeToString(h.Sum(nil)) != p.SHA256:
		return corrupt(fmt.Errorf("part %s: SHA-256 %x, the manifest says %s", p.Name, h.Sum(nil), p.SHA256))
	}
	return nil
}

func corrupt(err error) error { return fmt.Errorf("%w: %w", ErrCorrupt, err) }
