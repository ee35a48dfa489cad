package reach

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// BenchmarkNotesFile measures keeping the notes of a fleet of 10,000
// machines, each with a note, over a restart: the save at the stop (read
// machine by machine from the store and the notes, then written and
// synced) and the load at the start, with the notes in a lone broker's
// map or in a cluster member.
func BenchmarkNotesFile(b *testing.B) {
	const n = 10000
	st, err := store.Open(store.Config{Path: filepath.Join(b.TempDir(), "broker.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := fleettest.Seed(st, "acme", n); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "away-notes.json")
	now := time.Now()
	books := map[string]func() NoteBook{
		"alone":   func() NoteBook { return &localNotes{} },
		"cluster": func() NoteBook { return poolNotes{newPool(b, "eu-1")} },
	}
	for _, name := range []string{"alone", "cluster"} {
		l := New(Config{Name: "eu-1", NotesFile: path}, Deps{Store: st})
		l.SetNotes(books[name]())
		for i := range n {
			at := now.Add(-time.Duration(i) * time.Second)
			l.notes.SetNote(fmt.Sprintf("bench-machine-%07d", i), at,
				awayNote{Reason: wire.AwayAsleep, Since: at, Detail: "lid closed"}.encode())
		}
		b.Run(name+"/save", func(b *testing.B) {
			for b.Loop() {
				l.Stopping()
				l.SaveNotes()
			}
		})
		b.Run(name+"/load", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				l.SaveNotes()
				next := New(Config{Name: "eu-1", NotesFile: path}, Deps{Store: st})
				next.SetNotes(books[name]())
				b.StartTimer()
				next.LoadNotes()
			}
		})
	}
}
