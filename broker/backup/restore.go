package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/identity"
)

// ErrOccupied is returned by Restore when the data directory already
// holds a store, or a key the backup would replace.
var ErrOccupied = errors.New("the data directory is not empty")

// Restore checks the backup at path and lays it down in dataDir: the store
// and, if the backup has it, the key, each mode 0600 and synced, in a
// directory of mode 0700 (created if missing). It refuses a dataDir that
// holds a store, or a key when the backup carries one, and a backup that
// fails any check: a part whose size or SHA-256 differs from the
// manifest's, a missing part, a snapshot store.CheckBackup refuses, a key
// that is not the manifest's broker. A refused restore changes nothing.
func Restore(path, dataDir string) (Manifest, error) {
	m, err := restore(path, dataDir)
	if err != nil {
		return m, fmt.Errorf("restore %s: %w", path, err)
	}
	return m, nil
}

func restore(path, dataDir string) (Manifest, error) {
	if _, err := os.Stat(path); err != nil {
		return Manifest{}, err
	}
	if err := vacant(dataDir, StorePart); err != nil {
		return Manifest{}, err
	}
	created, err := makeDir(dataDir)
	if err != nil {
		return Manifest{}, err
	}
	undo := func() {
		for i := len(created) - 1; i >= 0; i-- {
			os.Remove(created[i]) // only while empty
		}
	}
	s, err := stage(path, dataDir)
	if err != nil {
		undo()
		return Manifest{}, err
	}
	defer s.remove()
	if err := s.check(dataDir); err != nil {
		s.remove()
		undo()
		return s.manifest, err
	}
	if err := s.place(dataDir); err != nil {
		s.remove()
		undo()
		return s.manifest, err
	}
	return s.manifest, nil
}

// vacant refuses a data directory that holds a file the restore would
// lay down.
func vacant(dataDir string, names ...string) error {
	for _, name := range names {
		p := filepath.Join(dataDir, name)
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			return fmt.Errorf("%w: %s exists. Restore into a new directory, or stop the broker using it and move the directory away first (mv %s %s.old)",
				ErrOccupied, p, dataDir, dataDir)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	return nil
}

// makeDir creates dir and its missing parents, mode 0700, and returns
// those it created, outermost first. An existing dir is made 0700.
func makeDir(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append([]string{d}, missing...)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return missing, err
	}
	return missing, nil
}

// check checks the staged snapshot and key against the manifest, and
// that the key's place is free.
func (s *staged) check(dataDir string) error {
	info, err := store.CheckBackup(s.files[StorePart])
	if err != nil {
		return corrupt(err)
	}
	if info.Machines != s.manifest.Store.Machines {
		return corrupt(fmt.Errorf("the snapshot holds %d machines, the manifest says %d", info.Machines, s.manifest.Store.Machines))
	}
	if !s.manifest.HasKey() {
		return nil
	}
	if err := vacant(dataDir, KeyPart); err != nil {
		return err
	}
	k, err := identity.Load(s.files[KeyPart])
	if err != nil {
		return corrupt(fmt.Errorf("key: %w", err))
	}
	if k.ID.String() != s.manifest.Broker.PeerID {
		return corrupt(fmt.Errorf("the key is peer %s, the manifest names broker %s", k.ID, s.manifest.Broker.PeerID))
	}
	return nil
}

// place gives each staged part its name, mode 0600, without replacing a
// file that appeared meanwhile: the key first, so that a store is never
// there without the key it belongs with. On error it takes back what it
// placed.
func (s *staged) place(dataDir string) error {
	var placed []string
	for _, name := range []string{KeyPart, StorePart} {
		tmp, ok := s.files[name]
		if !ok {
			continue
		}
		dst := filepath.Join(dataDir, name)
		err := os.Chmod(tmp, 0o600)
		if err == nil {
			err = os.Link(tmp, dst)
		}
		if err != nil {
			for _, p := range placed {
				os.Remove(p)
			}
			if errors.Is(err, fs.ErrExist) {
				return vacant(dataDir, name)
			}
			return err
		}
		placed = append(placed, dst)
	}
	s.remove()
	if err := syncDir(dataDir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(filepath.Clean(dataDir)))
}
