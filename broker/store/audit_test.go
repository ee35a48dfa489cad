package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestTranscriptsPerMachine: one machine filing many transcripts pushes
// out only its own oldest, never another machine's.
func TestTranscriptsPerMachine(t *testing.T) {
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), "s.db"), Broker: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(machine string, i int) {
		t.Helper()
		if err := s.PutTranscript(wire.Transcript{Machine: machine, Session: fmt.Sprintf("%032x", i), Name: "a.cast",
			At: time.Now(), Cast: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	put("good", 1)
	for i := range TranscriptsPerMachine + 20 {
		put("noisy", 1000+i)
	}
	if ts, _ := s.Transcripts(fmt.Sprintf("%032x", 1)); len(ts) != 1 || ts[0].Machine != "good" {
		t.Fatalf("another machine's transcript was pushed out: %+v", ts)
	}
	if ts, _ := s.Transcripts(fmt.Sprintf("%032x", 1000)); len(ts) != 0 {
		t.Fatal("the noisy machine's oldest transcript is still there")
	}
	n := 0
	all, _ := s.Transcripts("")
	for _, x := range all {
		if x.Machine == "noisy" {
			n++
		}
	}
	if n != TranscriptsPerMachine {
		t.Fatalf("noisy machine keeps %d transcripts, want %d", n, TranscriptsPerMachine)
	}
}
