package backup

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/buildinfo"
)

// Source is what a backup is made of.
type Source struct {
	// Snapshot writes the store snapshot to w and returns its size: a
	// running broker's through its control socket, or a stopped one's
	// store read directly (store.BackupFile). It must not be nil.
	Snapshot func(w io.Writer) (int64, error)
	// Key is the broker's key file as it is on disk. Nil leaves the key
	// out: a broker restored from the backup makes a new identity.
	Key []byte
	// Broker names the broker backed up.
	Broker Broker
	// Now is the backup's time. Zero means time.Now.
	Now time.Time
}

// Summary is what Write wrote.
type Summary struct {
	// Bytes and SHA256 are the backup file's size and checksum (hex).
	Bytes  int64
	SHA256 string
	// Manifest is the backup's manifest.
	Manifest Manifest
}

// Write makes a backup at path from src, mode 0600, replacing a file
// there only once the new one is complete and synced. The snapshot is
// staged next to path and checked before anything is written.
func Write(path string, src Source) (Summary, error) {
	if src.Snapshot == nil {
		return Summary{}, errors.New("backup: Source.Snapshot is nil")
	}
	if src.Now.IsZero() {
		src.Now = time.Now()
	}
	snap, err := stageSnapshot(path, src.Snapshot)
	if err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(snap.path)
	m := Manifest{Format: FormatName, Version: FormatVersion, CreatedAt: src.Now.UTC(),
		Broker: src.Broker, Build: buildinfo.Get("broker"), Store: snap.info,
		Parts: []Part{{Name: StorePart, Size: snap.info.Size, SHA256: snap.sum}}}
	if src.Key != nil {
		sum := sha256.Sum256(src.Key)
		m.Parts = append(m.Parts, Part{Name: KeyPart, Size: int64(len(src.Key)), SHA256: hex.EncodeToString(sum[:])})
	}
	sum, err := writeArchive(path, m, snap.path, src.Key)
	if err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}
	sum.Manifest = m
	return sum, nil
}

// stagedSnapshot is the store snapshot in a temporary file.
type stagedSnapshot struct {
	path string
	sum  string // hex SHA-256
	info store.BackupInfo
}

// stageSnapshot writes the snapshot to a temporary file next to out and
// checks it. On error nothing is left behind.
func stageSnapshot(out string, snapshot func(io.Writer) (int64, error)) (stagedSnapshot, error) {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".db-*")
	if err != nil {
		return stagedSnapshot{}, err
	}
	st := stagedSnapshot{path: f.Name()}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	n, err := snapshot(cw)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != cw.n {
		err = fmt.Errorf("the snapshot claims %d bytes, %d arrived", n, cw.n)
	}
	if err == nil {
		st.info, err = store.CheckBackup(st.path)
	}
	if err == nil && st.info.Size != n {
		err = fmt.Errorf("the snapshot is %d bytes, its pages need %d", n, st.info.Size)
	}
	if err != nil {
		os.Remove(st.path)
		return stagedSnapshot{}, fmt.Errorf("store snapshot: %w", err)
	}
	st.sum = hex.EncodeToString(h.Sum(nil))
	return st, nil
}

// writeArchive writes the archive to a temporary file, syncs it and
// renames it to path.
func writeArchive(path string, m Manifest, snapPath string, key []byte) (Summary, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return Summary{}, err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = writeParts(cw, m, snapPath, key)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return Summary{}, err
	}
	return Summary{Bytes: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// writeParts writes the tar stream: the manifest, the snapshot (checked
// again against its checksum as it is copied), the key.
func writeParts(w io.Writer, m Manifest, snapPath string, key []byte) error {
	tw := tar.NewWriter(w)
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeEntry(tw, ManifestName, m.CreatedAt, bytes.NewReader(append(raw, '\n')), int64(len(raw)+1), nil); err != nil {
		return err
	}
	snap, err := os.Open(snapPath)
	if err != nil {
		return err
	}
	defer snap.Close()
	part := m.part(StorePart)
	h := sha256.New()
	if err := writeEntry(tw, StorePart, m.CreatedAt, snap, part.Size, h); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != part.SHA256 {
		return errors.New("the staged snapshot changed on disk before it was archived")
	}
	if key != nil {
		if err := writeEntry(tw, KeyPart, m.CreatedAt, bytes.NewReader(key), int64(len(key)), nil); err != nil {
			return err
		}
	}
	return tw.Close()
}

// writeEntry writes one regular file of size bytes from r, also into h if
// not nil.
func writeEntry(tw *tar.Writer, name string, at time.Time, r io.Reader, size int64, h hash.Hash) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: at.Truncate(time.Second)}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var w io.Writer = tw
	if h != nil {
		w = io.MultiWriter(tw, h)
	}
	if n, err := io.CopyN(w, r, size); err != nil {
		return fmt.Errorf("%s: %d of %d bytes: %w", name, n, size, err)
	}
	return nil
}

// countWriter counts what passes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// syncDir makes a rename or a new name in dir durable. Windows cannot
// sync a directory; NTFS journals the rename itself.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
