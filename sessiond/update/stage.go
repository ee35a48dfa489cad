package update

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/readymesh/readymesh/peer/wire"
)

// Stage copies the downloaded blob to p.New (mode 0755; on Windows the
// file inherits the install directory's access list), hashing what it
// writes, so the staged file is exactly the bytes the manifest names even
// if the download changed after it was checked. The copy is written under
// a temporary name, synced and renamed. A directory the agent cannot
// write to is refused with a clear error; nothing else is touched.
func Stage(blob string, bin wire.ReleaseBinary, p Paths) error {
	dir := filepath.Dir(p.Exe)
	tmp := p.New + ".tmp"
	out, err := createNew(tmp)
	if err != nil {
		return notWritable(dir, err)
	}
	err = copyChecked(out, blob, bin)
	if err == nil {
		err = os.Chmod(tmp, 0o755) // the umask may have taken bits away
	}
	if err == nil {
		err = os.Rename(tmp, p.New)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("stage: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	return nil
}

// CheckWritable refuses an install directory the agent cannot write
// to, before anything is downloaded for it: it creates and deletes the
// file Stage writes first.
func CheckWritable(p Paths) error {
	f, err := createNew(p.New + ".tmp")
	if err != nil {
		return notWritable(filepath.Dir(p.Exe), err)
	}
	f.Close()
	return os.Remove(p.New + ".tmp")
}

// createNew creates path afresh (mode 0755): a file left there is
// removed first, and O_EXCL never follows a link someone put in its
// place.
func createNew(path string) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
}

// notWritable is the refusal of an install directory that cannot be
// written, whatever the reason (permissions, a read-only file system):
// next to the executable is the one place the binary can go, so that
// the swap is a rename.
func notWritable(dir string, err error) error {
	return fmt.Errorf("stage: the agent cannot write next to its executable in %s (%w): updates need an install directory the agent's account may write", dir, err)
}

// copyChecked copies blob into out, syncs and closes out, and checks the
// bytes copied against bin.
func copyChecked(out *os.File, blob string, bin wire.ReleaseBinary) error {
	in, err := os.Open(blob)
	if err != nil {
		out.Close()
		return err
	}
	defer in.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(in, bin.Size+1))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return err
	case n != bin.Size:
		return fmt.Errorf("the download holds %d bytes, the manifest says %d", n, bin.Size)
	case hex.EncodeToString(h.Sum(nil)) != bin.SHA256:
		return errors.New("the download changed after it was checked: SHA-256 mismatch")
	}
	return nil
}
