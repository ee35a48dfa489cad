package localdb

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestSeqSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 3; want++ {
		got, err := s.NextSeq()
		if err != nil || got != want {
			t.Fatalf("NextSeq = %d, %v; want %d", got, err, want)
		}
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ := s.NextSeq(); got != 4 {
		t.Fatalf("after reopen NextSeq = %d, want 4", got)
	}
	if err := s.SkipTo(10); err != nil {
		t.Fatal(err)
	}
	if err := s.SkipTo(7); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.NextSeq(); got != 11 {
		t.Fatalf("after SkipTo(10) NextSeq = %d, want 11", got)
	}
}

func TestEnrolmentAndLast(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Enrolment(); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("Enrolment before enrol: %v, want ErrNotEnrolled", err)
	}
	if _, ok, _ := s.Last(); ok {
		t.Fatal("Last reported a check-in before any")
	}
	e := Enrolment{MachineID: "m1", Name: "pc-1", Client: "acme", EnrolledAt: time.Unix(100, 0).UTC()}
	if err := s.SetEnrolment(e); err != nil {
		t.Fatal(err)
	}
	got, err := s.Enrolment()
	if err != nil || got.MachineID != "m1" || got.Client != "acme" || !got.EnrolledAt.Equal(e.EnrolledAt) {
		t.Fatalf("Enrolment = %+v, %v", got, err)
	}
	if err := s.SetLast(LastCheckIn{Seq: 5, BootID: "b"}); err != nil {
		t.Fatal(err)
	}
	if l, ok, err := s.Last(); !ok || err != nil || l.Seq != 5 || l.BootID != "b" {
		t.Fatalf("Last = %+v %v %v", l, ok, err)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// bbolt's flock is per open file description, so a second Open in the
	// same process is refused just as another process would be.
	if s2, err := Open(path); !errors.Is(err, ErrLocked) {
		if err == nil {
			s2.Close()
		}
		t.Fatalf("second Open of a locked database: %v, want ErrLocked", err)
	}
}

// TestEditEnrolment: edits of different fields keep each other, and an
// agent not enrolled has nothing to edit.
func TestEditEnrolment(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.EditEnrolment(func(e *Enrolment) { e.ReleaseKey = "RWk" }); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("edit before enrolment: %v", err)
	}
	if err := s.SetEnrolment(Enrolment{MachineID: "m1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EditEnrolment(func(e *Enrolment) { e.ReleaseKey = "RWk" }); err != nil {
		t.Fatal(err)
	}
	got, err := s.EditEnrolment(func(e *Enrolment) { e.Name = "pc-1" })
	if err != nil || got.ReleaseKey != "RWk" || got.Name != "pc-1" || got.MachineID != "m1" {
		t.Fatalf("after two edits: %+v, %v", got, err)
	}
}
