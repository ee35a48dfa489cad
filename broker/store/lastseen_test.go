package store

import (
	"errors"
	"testing"
	"time"
)

func TestSetLastSeen(t *testing.T) {
	stored := t0.Add(10 * time.Minute)
	tests := []struct {
		name    string
		seen    map[string]time.Time
		want    time.Time // m1's LastSeen afterwards
		wantRev uint64    // m1's Rev afterwards; it is 2 before
	}{
		{name: "newer replaces", seen: map[string]time.Time{"m1": stored.Add(time.Second)}, want: stored.Add(time.Second), wantRev: 3},
		{name: "newer in another zone", seen: map[string]time.Time{"m1": stored.Add(time.Second).In(time.FixedZone("JST", 9*3600))},
			want: stored.Add(time.Second), wantRev: 3},
		{name: "older does not", seen: map[string]time.Time{"m1": stored.Add(-time.Second)}, want: stored, wantRev: 2},
		{name: "equal does not", seen: map[string]time.Time{"m1": stored}, want: stored, wantRev: 2},
		{name: "unknown ignored", seen: map[string]time.Time{"m404": stored.Add(time.Hour)}, want: stored, wantRev: 2},
		{name: "empty", seen: nil, want: stored, wantRev: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, cfg := enrolled(t, 0, "m1", "m2")
			if err := s.SetLastSeen(map[string]time.Time{"m1": stored}); err != nil {
				t.Fatal(err)
			}
			before := capture(t, s)
			if err := s.SetLastSeen(tt.seen); err != nil {
				t.Fatalf("SetLastSeen: %v", err)
			}
			if tt.wantRev == 2 {
				assertUnchanged(t, s, before)
			}
			for _, when := range []string{"before reopen", "after reopen"} {
				m, _ := s.Machine("m1")
				if m.LastSeen == nil || !m.LastSeen.Equal(tt.want) || m.LastSeen.Location() != time.UTC || m.Rev != tt.wantRev {
					t.Errorf("%s: m1 LastSeen %v, Rev %d; want %v UTC, Rev %d", when, m.LastSeen, m.Rev, tt.want, tt.wantRev)
				}
				if m2, _ := s.Machine("m2"); m2.LastSeen != nil {
					t.Errorf("%s: m2 LastSeen = %v, want nil", when, m2.LastSeen)
				}
				if _, ok := s.Machine("m404"); ok || len(s.Machines()) != 2 {
					t.Errorf("%s: SetLastSeen created a machine record", when)
				}
				s = reopen(t, s, cfg)
			}
		})
	}
}

// LastSeen is the last time a broker saw the machine: a check-in whose
// commit time is older than a LastSeen already stored (a presence flush
// committed first, or another broker's clock) must not move it back, just
// as SetLastSeen never does.
func TestCheckInKeepsNewerLastSeen(t *testing.T) {
	s, _ := enrolled(t, 0, "m1")
	seen := t0.Add(10 * time.Minute)
	if err := s.SetLastSeen(map[string]time.Time{"m1": seen}); err != nil {
		t.Fatal(err)
	}
	mustCheckIn(t, s, checkIn("m1", 1, testSnapshot("web1", 1)), t0.Add(5*time.Minute))
	if m, _ := s.Machine("m1"); m.LastSeen == nil || !m.LastSeen.Equal(seen) {
		t.Errorf("LastSeen after an older check-in = %v, want it kept at %v", m.LastSeen, seen)
	}
}

// SetLastSeen and check-ins for the same machines share batches; neither
// loses the other's write.
func TestSetLastSeenRacesCheckIn(t *testing.T) {
	s, cfg := enrolled(t, 0, "m1", "m2")
	errs := make(chan error, 40)
	for i := range 20 {
		go func() {
			_, err := s.CheckIn(checkIn("m1", uint64(i+1), testSnapshot("web1", i)), t0)
			if errors.Is(err, ErrSequence) {
				err = nil // a lower seq lost the race to a higher one
			}
			errs <- err
		}()
		go func() {
			errs <- s.SetLastSeen(map[string]time.Time{"m2": t0.Add(time.Duration(i) * time.Second)})
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	s = reopen(t, s, cfg)
	m1, _ := s.Machine("m1")
	m2, _ := s.Machine("m2")
	if m1.LastCheckIn == nil || m2.LastSeen == nil || !m2.LastSeen.Equal(t0.Add(19*time.Second)) {
		t.Errorf("after the race: m1 last check-in %+v, m2 last seen %v; want a check-in and %v", m1.LastCheckIn, m2.LastSeen, t0.Add(19*time.Second))
	}
}
