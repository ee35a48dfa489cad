package reach

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// notesRig is a store with machines m1…m5 of client acme and a path for
// the notes file.
type notesRig struct {
	st   *store.Store
	path string
	now  time.Time
	ms   map[string]store.Machine
}

func newNotesRig(t *testing.T) *notesRig {
	t.Helper()
	rig := &notesRig{st: fleettest.Open(t), path: filepath.Join(t.TempDir(), "away-notes.json"),
		now: time.Now().UTC().Truncate(time.Millisecond), ms: map[string]store.Machine{}}
	for _, id := range []string{"m1", "m2", "m3", "m4", "m5"} {
		rig.ms[id] = fleettest.Enrol(t, rig.st, id, "acme", "pc-"+id, rig.now.Add(-48*time.Hour))
	}
	return rig
}

// layer returns a layer of broker name on the rig's store, keeping its
// notes in the rig's file and logging to log.
func (rig *notesRig) layer(name string, log *bytes.Buffer) *Layer {
	return New(Config{Name: name, NotesFile: rig.path, Now: func() time.Time { return rig.now },
		Logger: slog.New(slog.NewTextHandler(log, nil))}, Deps{Store: rig.st})
}

// putRow puts id in l's presence table as if its stream were open, last
// beating at beat, with the notice leaving if not nil.
func putRow(l *Layer, id string, beat time.Time, leaving *wire.Leaving) {
	l.table.mu.Lock()
	defer l.table.mu.Unlock()
	l.table.gen++
	l.table.rows[id] = &row{gen: l.table.gen, since: beat.Add(-time.Hour), lastBeat: beat, leaving: leaving}
}

// TestNotesRestart: the notes a lone broker knows at a clean stop are
// there after the next start, with their stamps; machines bridged at the
// stop say so; notes about online machines and removed machines are not
// kept; the file is removed once loaded.
func TestNotesRestart(t *testing.T) {
	rig := newNotesRig(t)
	var log1 bytes.Buffer
	before := rig.layer("eu-1", &log1)
	back := rig.now.Add(8 * time.Hour)
	asleepAt := rig.now.Add(-3 * time.Hour)
	before.notes.SetNote("m1", asleepAt, awayNote{Reason: wire.AwayAsleep, Since: asleepAt, Detail: "lid closed", Back: &back}.encode())
	before.notes.SetNote("m2", rig.now.Add(-time.Hour), awayNote{Since: rig.now.Add(-time.Hour)}.encode()) // online when noted
	before.notes.SetNote("gone", rig.now, awayNote{Reason: wire.AwayShutdown, Since: rig.now}.encode())    // not in the store
	putRow(before, "m3", rig.now.Add(-3*time.Second), nil)
	putRow(before, "m4", rig.now.Add(-2*time.Second), nil)
	putRow(before, "m5", rig.now.Add(-time.Second), &wire.Leaving{Reason: wire.AwayShutdown, Detail: "reboot"})
	before.Stopping()
	// The stop breaks m4's stream: the note that leaves is not what the
	// file says.
	before.departed("m4", row{since: rig.now.Add(-time.Hour), lastBeat: rig.now.Add(-2 * time.Second)}, endLost, rig.now)
	// m3's notice came after Stopping looked, before its stream ended:
	// its own reason is kept.
	before.departed("m3", row{since: rig.now.Add(-time.Hour), lastBeat: rig.now,
		leaving: &wire.Leaving{Reason: wire.AwayAsleep, Detail: "lid closed late"}}, endClosed, rig.now)
	before.SaveNotes()

	fi, err := os.Stat(rig.path)
	if err != nil {
		t.Fatalf("no notes file after the stop: %v\n%s", err, log1.String())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("notes file mode %v, want 0600", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(rig.path)
	if err != nil {
		t.Fatal(err)
	}
	var saved notesFile
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range saved.Notes {
		ids = append(ids, e.Machine)
	}
	if strings.Join(ids, ",") != "m1,m3,m4,m5" || saved.Broker != "eu-1" || saved.Version != notesVersion {
		t.Errorf("saved %v by %q (version %d), want m1,m3,m4,m5 by eu-1", ids, saved.Broker, saved.Version)
	}

	var log2 bytes.Buffer
	after := rig.layer("eu-1", &log2)
	after.LoadNotes()
	if _, err := os.Stat(rig.path); !os.IsNotExist(err) {
		t.Errorf("the notes file is still there after the start: %v", err)
	}
	if at, _, ok := after.notes.Note("m1"); !ok || !at.Equal(asleepAt) {
		t.Errorf("m1's note stamped %v, %v; want %v", at, ok, asleepAt)
	}
	tests := []struct {
		id, reason, detail string
		since              time.Time
		back               *time.Time
	}{
		{id: "m1", reason: wire.AwayAsleep, detail: "lid closed", since: asleepAt, back: &back},
		{id: "m2"}, // its arrival note says nothing once it is offline
		{id: "m3", reason: wire.AwayAsleep, detail: "lid closed late", since: rig.now},
		{id: "m4", reason: wire.AwayLost, detail: "its bridge to broker eu-1 was open when that broker stopped",
			since: rig.now.Add(-2 * time.Second)},
		{id: "m5", reason: wire.AwayShutdown, detail: "reboot", since: rig.now},
	}
	for _, tc := range tests {
		m := rig.ms[tc.id]
		r := after.Reach(&m)
		if r.Online || r.OfflineReason != tc.reason || r.Detail != tc.detail {
			t.Errorf("%s: online %v reason %q detail %q; want reason %q detail %q", tc.id, r.Online, r.OfflineReason, r.Detail, tc.reason, tc.detail)
		}
		if tc.reason != "" && (r.OfflineSince == nil || !r.OfflineSince.Equal(tc.since)) {
			t.Errorf("%s: offline since %v, want %v", tc.id, r.OfflineSince, tc.since)
		}
		if (tc.back == nil) != (r.ExpectedBack == nil) || tc.back != nil && !tc.back.Equal(*r.ExpectedBack) {
			t.Errorf("%s: expected back %v, want %v", tc.id, r.ExpectedBack, tc.back)
		}
	}
	if _, _, ok := after.notes.Note("gone"); ok {
		t.Error("a note about a machine the store does not hold came back")
	}
	if !strings.Contains(log2.String(), "away notes loaded") || !strings.Contains(log2.String(), "notes=4") {
		t.Errorf("the load was not logged with 4 notes:\n%s", log2.String())
	}

	// A later stop with nothing to say leaves no file behind.
	after.notes = &localNotes{}
	after.SaveNotes()
	if _, err := os.Stat(rig.path); !os.IsNotExist(err) {
		t.Errorf("a stop with no notes left a file: %v", err)
	}
}

// writeNotes writes f as the rig's notes file.
func (rig *notesRig) writeNotes(t *testing.T, f notesFile) {
	t.Helper()
	raw, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rig.path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestNotesLoadDrops: the entries that no longer hold are dropped and
// counted; of two about one machine the newer is kept; a stamp ahead of
// the clock is brought back to now.
func TestNotesLoadDrops(t *testing.T) {
	rig := newNotesRig(t)
	asleep := func(at time.Time, detail string) awayNote {
		return awayNote{Reason: wire.AwayAsleep, Since: at, Detail: detail}
	}
	old := rig.now.Add(-maxNoteAge - time.Minute)
	rig.writeNotes(t, notesFile{Version: notesVersion, Broker: "eu-1", SavedAt: rig.now, Notes: []savedNote{
		{Machine: "m1", At: old, Note: asleep(old, "stale")},
		{Machine: "intruder", At: rig.now, Note: asleep(rig.now, "unknown")},
		{Machine: "m2", At: rig.now, Note: awayNote{Reason: "on fire", Since: rig.now}},
		{Machine: "m2", At: rig.now, Note: awayNote{Since: rig.now}}, // an arrival note is no reason
		{Machine: "", At: rig.now, Note: asleep(rig.now, "nobody")},
		{Machine: "m3", Note: asleep(rig.now, "no stamp")},
		{Machine: "m4", At: rig.now.Add(-2 * time.Hour), Note: asleep(rig.now, "older")},
		{Machine: "m4", At: rig.now.Add(-time.Hour), Note: asleep(rig.now, "newer")},
		{Machine: "m4", At: rig.now.Add(-3 * time.Hour), Note: asleep(rig.now, "oldest")},
		{Machine: "m5", At: rig.now.Add(24 * time.Hour), Note: asleep(rig.now, "ahead")},
	}})
	var log bytes.Buffer
	l := rig.layer("eu-1", &log)
	l.LoadNotes()
	for id, want := range map[string]string{"m1": "", "m2": "", "m3": "", "m4": "newer", "m5": "ahead"} {
		n, ok := l.note(id)
		if ok != (want != "") || ok && n.Detail != want {
			t.Errorf("%s: note %+v, %v; want detail %q", id, n, ok, want)
		}
	}
	if at, _, _ := l.notes.Note("m5"); !at.Equal(rig.now) {
		t.Errorf("a note stamped ahead of the clock kept %v, want now (%v)", at, rig.now)
	}
	if _, _, ok := l.notes.Note("intruder"); ok {
		t.Error("a note about a machine the store does not hold was loaded")
	}
	for _, want := range []string{"notes=2", "stale=1", "unknown=1", "bad=4"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the load log lacks %s:\n%s", want, log.String())
		}
	}
}

// TestNotesFileIgnored: a notes file that cannot be read or parsed is
// logged and ignored, loads nothing and is removed; the layer goes on.
func TestNotesFileIgnored(t *testing.T) {
	tests := []struct {
		desc  string
		write func(t *testing.T, rig *notesRig)
		why   string
	}{
		{desc: "garbage", why: "parsing", write: func(t *testing.T, rig *notesRig) {
			os.WriteFile(rig.path, []byte("\x00\x01not json"), 0o600)
		}},
		{desc: "truncated", why: "parsing", write: func(t *testing.T, rig *notesRig) {
			os.WriteFile(rig.path, []byte(`{"version":1,"notes":[{"machine":"m1","at":"2026-`), 0o600)
		}},
		{desc: "a note of the wrong shape", why: "parsing", write: func(t *testing.T, rig *notesRig) {
			os.WriteFile(rig.path, []byte(`{"version":1,"notes":[{"machine":"m1","at":"2026-01-01T00:00:00Z","note":"asleep"}]}`), 0o600)
		}},
		{desc: "another version", why: "version 2", write: func(t *testing.T, rig *notesRig) {
			rig.writeNotes(t, notesFile{Version: 2, Notes: []savedNote{{Machine: "m1", At: rig.now,
				Note: awayNote{Reason: wire.AwayAsleep, Since: rig.now}}}})
		}},
		{desc: "larger than the fleet can make", why: "larger than", write: func(t *testing.T, rig *notesRig) {
			f := notesFile{Version: notesVersion}
			for range 20 {
				f.Notes = append(f.Notes, savedNote{Machine: "m1", At: rig.now,
					Note: awayNote{Reason: wire.AwayAsleep, Since: rig.now, Detail: strings.Repeat("z", 200)}})
			}
			rig.writeNotes(t, f)
		}},
		{desc: "not a file", why: "reading", write: func(t *testing.T, rig *notesRig) {
			if err := os.Mkdir(rig.path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			rig := newNotesRig(t)
			tc.write(t, rig)
			var log bytes.Buffer
			l := rig.layer("eu-1", &log)
			l.LoadNotes()
			if !strings.Contains(log.String(), "away notes file ignored") || !strings.Contains(log.String(), tc.why) {
				t.Errorf("log lacks the refusal (%q):\n%s", tc.why, log.String())
			}
			for id := range rig.ms {
				if _, _, ok := l.notes.Note(id); ok {
					t.Errorf("%s: a note loaded from a bad file", id)
				}
			}
			if _, err := os.Stat(rig.path); !os.IsNotExist(err) {
				t.Errorf("the bad file is still there: %v", err)
			}
			// The layer still works: a stop writes a good file over it.
			l.setNote("m1", awayNote{Reason: wire.AwayAsleep, Since: rig.now})
			l.SaveNotes()
			if _, err := os.Stat(rig.path); err != nil {
				t.Errorf("no notes file after the next stop: %v", err)
			}
		})
	}
}

// TestNotesCluster: in a cluster the notes are read from the cluster for
// the stored machines and go back to it with their stamps; a newer note
// another broker made since wins over the loaded one.
func TestNotesCluster(t *testing.T) {
	rig := newNotesRig(t)
	var log bytes.Buffer
	first := rig.layer("eu-1", &log)
	first.SetNotes(poolNotes{newPool(t, "eu-1")})
	asleepAt, lostAt := rig.now.Add(-2*time.Hour), rig.now.Add(-time.Hour)
	first.notes.SetNote("m1", asleepAt, awayNote{Reason: wire.AwayAsleep, Since: asleepAt}.encode())
	first.notes.SetNote("m2", lostAt, awayNote{Reason: wire.AwayLost, Since: lostAt}.encode())
	first.Stopping()
	first.SaveNotes()

	second := rig.layer("eu-1", &log)
	notes := poolNotes{newPool(t, "eu-1")}
	second.SetNotes(notes)
	// eu-2's newer note about m2 reached this broker before the load.
	backAt := rig.now.Add(-time.Minute)
	notes.c.SetNote("m2", backAt, awayNote{Reason: wire.AwayShutdown, Since: backAt}.encode())
	second.LoadNotes()
	if at, _, ok := notes.Note("m1"); !ok || !at.Equal(asleepAt) {
		t.Errorf("m1 in the cluster at %v, %v; want %v", at, ok, asleepAt)
	}
	if n, ok := second.note("m2"); !ok || n.Reason != wire.AwayShutdown {
		t.Errorf("m2: %+v, %v; want the newer shutdown note", n, ok)
	}
}

// poolNotes is a real cluster member's notes as a NoteBook, as the
// broker's clusterNotes is.
type poolNotes struct{ c *cluster.Cluster }

func (p poolNotes) SetNote(id string, at time.Time, body []byte) { p.c.SetNote(id, at, body) }

func (p poolNotes) Note(id string) (time.Time, []byte, bool) {
	n, ok := p.c.Note(id)
	return n.At, n.Body, ok
}

// newPool is a cluster member on loopback that joins nobody.
func newPool(tb testing.TB, name string) *cluster.Cluster {
	tb.Helper()
	c, err := cluster.New(cluster.Config{Name: name, BindAddr: "127.0.0.1:0", Profile: cluster.ProfileLocal})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
