package reach

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/peer/atomicfile"
	"github.com/readymesh/readymesh/peer/wire"
)

// The notes file carries the away notes over a clean restart. It is a
// hand-over from one run of the broker to the next, not stored state:
// the stopping broker writes it (SaveNotes), the starting one reads it
// before it serves and removes it at once (LoadNotes), so a crash later
// in that run cannot bring back notes that have gone stale since. A
// broker that crashes keeps nothing, as before.
//
// What the file holds is checked as a message from outside would be:
// a note that does not decode, an unknown reason, a machine the store
// does not know or a stamp older than maxNoteAge are dropped, one note
// is kept per machine, and a file that cannot be read or parsed is
// logged and ignored. The broker starts either way.

// notesVersion is the notes file's format.
const notesVersion = 1

// maxNoteAge is how old a saved note may be and still be loaded: as long
// as the cluster keeps a note.
const maxNoteAge = cluster.DefaultNoteTTL

// maxSavedNote bounds one machine's entry in the file, in bytes: a note
// of at most maxNote bytes, the machine ID and the stamp. The file may
// hold one entry per stored machine.
const maxSavedNote = 1 << 10

// notesFile is the file's content.
type notesFile struct {
	Version int         `json:"version"`
	Broker  string      `json:"broker"`
	SavedAt time.Time   `json:"saved_at"`
	Notes   []savedNote `json:"notes"`
}

// savedNote is one machine's note with the stamp it was made at.
type savedNote struct {
	Machine string    `json:"machine"`
	At      time.Time `json:"at"`
	Note    awayNote  `json:"note"`
}

// Stopping tells the layer the broker is stopping: it is about to close
// its host, which ends every presence stream open now. Those machines
// go away because of this broker, not of their own, so the notes file
// says so of each of them (stopNote) rather than what the broken stream
// would say ("lost without a notice"). The broker calls it once, before
// it closes its host; it does nothing when Config.NotesFile is empty.
func (l *Layer) Stopping() {
	if l.cfg.NotesFile == "" {
		return
	}
	l.stopAt = l.cfg.Now()
	l.stopNotes = map[string]awayNote{}
	for id, r := range l.table.rowsNow() {
		l.stopNotes[id] = l.stopNote(r)
	}
}

// stopNote is what the notes file says of a machine whose presence
// stream, row r, was open when this broker stopped: the notice it sent
// on the stream, if any, else lost since its last heartbeat.
func (l *Layer) stopNote(r row) awayNote {
	if lv := r.leaving; lv != nil {
		return awayNote{Reason: lv.Reason, Since: l.stopAt, Detail: lv.Detail, Back: lv.ExpectedBack}
	}
	return awayNote{Reason: wire.AwayLost, Since: r.lastBeat,
		Detail: "its bridge to broker " + l.cfg.Name + " was open when that broker stopped"}
}

// SaveNotes writes to Config.NotesFile, atomically and readable by the
// broker's user only, the note about each stored machine that says why
// it is away: the machine's newest note, whichever broker made it, or
// what Stopping recorded for the machines bridged here. Notes about
// machines online (arrival notes) are not kept: the restart ends their
// bridges here. The broker calls it once as it stops, after Stopping,
// once its host is closed and before its store is. It does nothing when
// Config.NotesFile is empty.
func (l *Layer) SaveNotes() {
	path := l.cfg.NotesFile
	if path == "" {
		return
	}
	f := l.notesToSave()
	if len(f.Notes) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			l.cfg.Logger.Warn("removing the away notes file", "file", path, "err", err)
		}
		return
	}
	raw, err := json.Marshal(f)
	if err == nil {
		err = atomicfile.Write(path, raw, 0o600)
	}
	if err != nil {
		l.cfg.Logger.Warn("away notes not kept for the next start", "file", path, "err", err)
		return
	}
	l.cfg.Logger.Info("away notes kept for the next start", "file", path, "notes", len(f.Notes))
}

// notesToSave collects the notes SaveNotes writes. The cluster has no
// listing of its notes, and the map of a lone broker may hold machines
// removed since: both are read machine by machine, for the machines the
// store holds.
func (l *Layer) notesToSave() notesFile {
	f := notesFile{Version: notesVersion, Broker: l.cfg.Name, SavedAt: l.cfg.Now().UTC()}
	for _, m := range l.deps.Store.Machines() {
		at, n, ok := l.noteAt(m.ID)
		if stop, bridged := l.stopNotes[m.ID]; bridged && !l.leftDuringStop(at, n, ok) {
			at, n, ok = l.stopAt, stop, true
		}
		if !ok || n.Reason == "" {
			continue
		}
		f.Notes = append(f.Notes, savedNote{Machine: m.ID, At: at.UTC(), Note: n})
	}
	slices.SortFunc(f.Notes, func(a, b savedNote) int { return strings.Compare(a.Machine, b.Machine) })
	return f
}

// noteAt returns the newest note about id and its stamp.
func (l *Layer) noteAt(id string) (time.Time, awayNote, bool) {
	at, body, ok := l.notes.Note(id)
	if !ok {
		return time.Time{}, awayNote{}, false
	}
	n, ok := decodeNote(body)
	return at, n, ok
}

// leftDuringStop reports whether a machine bridged here when the broker
// began to stop has a note, stamped at, that gives a reason of its own
// since: its notice arrived after Stopping looked. The "lost" note a
// stream broken by the stop leaves does not count.
func (l *Layer) leftDuringStop(at time.Time, n awayNote, ok bool) bool {
	return ok && !at.Before(l.stopAt) && n.Reason != "" && n.Reason != wire.AwayLost
}

// LoadNotes reads the notes file the last clean stop wrote, if any, keeps
// the notes that still hold, and removes the file. In a cluster the notes
// go to the cluster stamped as they were made, where a newer note from
// another broker wins. The broker calls it once, before it serves.
func (l *Layer) LoadNotes() {
	path := l.cfg.NotesFile
	if path == "" {
		return
	}
	f, err := l.readNotes(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
		l.cfg.Logger.Warn("removing the away notes file", "file", path, "err", rmErr)
	}
	if err != nil {
		l.cfg.Logger.Warn("away notes file ignored", "file", path, "err", err)
		return
	}
	kept, dropped := l.notesToLoad(f)
	for id, e := range kept {
		l.notes.SetNote(id, e.At, e.Note.encode())
	}
	l.cfg.Logger.Info("away notes loaded", "file", path, "saved_at", f.SavedAt, "by", f.Broker,
		"notes", len(kept), "stale", dropped.stale, "unknown", dropped.unknown, "bad", dropped.bad)
}

// readNotes reads and parses the notes file at path. It refuses a file
// larger than one entry per stored machine can make.
func (l *Layer) readNotes(path string) (notesFile, error) {
	var f notesFile
	file, err := os.Open(path)
	if err != nil {
		return f, err
	}
	defer file.Close()
	limit := int64(l.deps.Store.Count()+1) * maxSavedNote
	raw, err := io.ReadAll(io.LimitReader(file, limit+1))
	switch {
	case err != nil:
		return f, fmt.Errorf("reading: %w", err)
	case int64(len(raw)) > limit:
		return f, fmt.Errorf("larger than %d bytes, %d for each of %d stored machines and one more",
			limit, maxSavedNote, l.deps.Store.Count())
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return f, fmt.Errorf("parsing: %w", err)
	}
	if f.Version != notesVersion {
		return f, fmt.Errorf("version %d, this broker reads %d", f.Version, notesVersion)
	}
	return f, nil
}

// droppedNotes counts the entries LoadNotes did not keep.
type droppedNotes struct {
	stale   int // stamped more than maxNoteAge ago
	unknown int // about a machine the store does not hold
	bad     int // no machine, no stamp, or a note that is not one
}

// notesToLoad picks from f the notes to keep: at most one per machine,
// the newest. A note stamped ahead of this broker's clock (the clock was
// set back since) is stamped now, so it cannot outrank the notes made
// from now on.
func (l *Layer) notesToLoad(f notesFile) (map[string]savedNote, droppedNotes) {
	now := l.cfg.Now()
	kept := map[string]savedNote{}
	var dropped droppedNotes
	for _, e := range f.Notes {
		if e.At.After(now) {
			e.At = now
		}
		switch {
		case e.Machine == "" || e.At.IsZero() || !slices.Contains(wire.AwayReasons, e.Note.Reason):
			dropped.bad++
		case now.Sub(e.At) > maxNoteAge:
			dropped.stale++
		default:
			if _, ok := l.deps.Store.Machine(e.Machine); !ok {
				dropped.unknown++
			} else if cur, ok := kept[e.Machine]; !ok || e.At.After(cur.At) {
				kept[e.Machine] = e
			}
		}
	}
	return kept, dropped
}

// rowsNow returns a copy of every open presence stream's row.
func (t *table) rowsNow() map[string]row {
	t.mu.RLock()
	defer t.mu.RUnlock()
	rows := make(map[string]row, len(t.rows))
	for id, r := range t.rows {
		rows[id] = *r
	}
	return rows
}
