package lastrun

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/readymesh/readymesh/peer/atomicfile"
	"github.com/readymesh/readymesh/peer/wire"
)

// marker is MarkerFile: what a run says of itself.
type marker struct {
	Started time.Time `json:"started"`
	// Alive is when the run was last known alive: its last refresh, or
	// its clean stop.
	Alive time.Time `json:"alive"`
	PID   int       `json:"pid"`
	// Stopped and Reason record a clean stop.
	Stopped bool   `json:"stopped,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// LastUnclean is the newest unclean end of any run so far.
	LastUnclean *wire.RunEnd `json:"last_unclean,omitempty"`
}

// maxMarker bounds what is read of a marker: it is a few hundred bytes.
const maxMarker = 64 << 10

// readMarker reads the marker at path. ok is false when there is none.
// A marker that cannot be decoded (the power went while a refresh, which
// is not fsynced, was being renamed into place) comes back with Alive set
// to the file's modification time and err set.
func readMarker(path string) (m marker, ok bool, err error) {
	raw, mtime, err := readHead(path, maxMarker)
	if errors.Is(err, fs.ErrNotExist) {
		return marker{}, false, nil
	}
	if err != nil {
		return marker{}, true, err
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Alive.IsZero() {
		return marker{Alive: mtime}, true, cmpErr(err, errors.New("no alive time"))
	}
	return m, true, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// writeMarker replaces the marker at path. With sync the file and its
// directory are fsynced; without, it is only renamed into place, so a
// reader never sees half a marker but a power cut may lose the refresh.
func writeMarker(path string, m *marker, sync bool) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	raw = append(raw, '\n')
	if sync {
		if err := atomicfile.Write(path, raw, 0o600); err != nil {
			return err
		}
		syncDir(filepath.Dir(path))
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// syncDir makes a rename in dir durable where the system allows it;
// Windows does not open directories for syncing, and its rename is
// journaled anyway.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

// readHead reads at most n bytes of the file at path, and its
// modification time.
func readHead(path string, n int64) ([]byte, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	buf := make([]byte, min(st.Size(), n))
	k, err := f.ReadAt(buf, 0)
	if k == len(buf) {
		err = nil
	}
	return buf[:k], st.ModTime(), err
}
