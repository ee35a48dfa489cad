package store

import (
	"errors"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestEnrollRoundTrip(t *testing.T) {
	s, cfg := newStore(t)
	mustClient(t, s, "acme")
	hash := mustToken(t, s, "acme", 2, t0.Add(time.Hour))
	now := t0.In(time.FixedZone("EST", -5*3600))

	m, err := s.Enroll(EnrollRequest{TokenHash: hash, MachineID: "12D3KooWm1", Name: "web1", Hostname: "web1.acme.lan", Now: now})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	want := Machine{ID: "12D3KooWm1", Rev: 1, Name: "web1", Client: "acme", Hostname: "web1.acme.lan", EnrolledAt: t0}
	if !sameJSON(m, want) || m.EnrolledAt.Location() != time.UTC {
		t.Errorf("Enroll = %s, want %s (in UTC)", jsonOf(m), jsonOf(want))
	}
	if got, ok := s.Machine(m.ID); !ok || !sameJSON(got, want) {
		t.Errorf("Machine = %s, %v; want %s", jsonOf(got), ok, jsonOf(want))
	}
	if tok, err := s.Token(hash); err != nil || tok.UsesLeft != 1 || tok.Uses != 2 {
		t.Errorf("Token after enrolment = %+v, %v; want 1 of 2 uses left", tok, err)
	}
	if snap, err := s.Snapshot(m.ID); snap != nil || err != nil {
		t.Errorf("Snapshot before any check-in = %v, %v; want nil, nil", snap, err)
	}
	if h, err := s.History(m.ID); len(h) != 0 || err != nil {
		t.Errorf("History before any check-in = %v, %v; want empty", h, err)
	}

	s = reopen(t, s, cfg)
	if got, ok := s.Machine(m.ID); !ok || !sameJSON(got, want) {
		t.Errorf("after reopen, Machine = %s, %v; want %s", jsonOf(got), ok, jsonOf(want))
	}
	if ms := s.Machines(); len(ms) != 1 {
		t.Errorf("after reopen, Machines = %s, want one", jsonOf(ms))
	}
}

func TestEnrollRules(t *testing.T) {
	expiry := t0.Add(time.Hour)
	tests := []struct {
		name     string
		token    string // live, spent, globex or unknown
		id, mach string
		now      time.Time
		wantErr  error // nil: success
		noChange bool  // a success that must not write anything
	}{
		{name: "unknown token", token: "unknown", id: "m9", mach: "web9", now: t0, wantErr: ErrTokenUnknown},
		{name: "exactly at expiry", token: "live", id: "m9", mach: "web9", now: expiry, wantErr: ErrTokenExpired},
		{name: "after expiry", token: "live", id: "m9", mach: "web9", now: expiry.Add(time.Minute), wantErr: ErrTokenExpired},
		{name: "just before expiry", token: "live", id: "m9", mach: "web9", now: expiry.Add(-time.Nanosecond)},
		{name: "used up", token: "spent", id: "m9", mach: "web9", now: t0, wantErr: ErrTokenUsedUp},
		{name: "name taken in client", token: "live", id: "m9", mach: "web1", now: t0, wantErr: ErrNameTaken},
		{name: "same name in other client", token: "globex", id: "m9", mach: "web1", now: t0},
		{name: "machine enrolled under other name", token: "live", id: "m1", mach: "web9", now: t0, wantErr: ErrExists},
		{name: "machine enrolled in other client", token: "globex", id: "m1", mach: "web1", now: t0, wantErr: ErrExists},
		{name: "re-enrol same machine", token: "live", id: "m1", mach: "web1", now: t0, noChange: true},
		{name: "re-enrol with spent token", token: "spent", id: "m2", mach: "db1", now: t0, noChange: true},
		{name: "re-enrol after expiry", token: "live", id: "m1", mach: "web1", now: expiry.Add(time.Hour), noChange: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			mustClient(t, s, "acme")
			mustClient(t, s, "globex")
			tokens := map[string]string{
				"live":    mustToken(t, s, "acme", 3, expiry),
				"spent":   mustToken(t, s, "acme", 1, expiry),
				"globex":  mustToken(t, s, "globex", 3, expiry),
				"unknown": wire.HashSecret("never stored"),
			}
			mustEnroll(t, s, tokens["live"], "m1", "web1")
			mustEnroll(t, s, tokens["spent"], "m2", "db1")
			mustCheckIn(t, s, checkIn("m1", 1, testSnapshot("web1", 1)), t0)

			before := capture(t, s)
			tokBefore, _ := s.Token(tokens[tt.token])
			m, err := s.Enroll(EnrollRequest{TokenHash: tokens[tt.token], MachineID: tt.id, Name: tt.mach, Now: tt.now})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Enroll = %v, want %v", err, tt.wantErr)
				}
				if m.ID != "" {
					t.Errorf("refused Enroll returned machine %s", jsonOf(m))
				}
				assertUnchanged(t, s, before)
				return
			}
			if err != nil {
				t.Fatalf("Enroll: %v", err)
			}
			if m.ID != tt.id || m.Name != tt.mach {
				t.Errorf("Enroll = %s, want %s named %s", jsonOf(m), tt.id, tt.mach)
			}
			if got, _ := s.Machine(tt.id); !sameJSON(got, m) {
				t.Errorf("Machine = %s, want what Enroll returned, %s", jsonOf(got), jsonOf(m))
			}
			if tt.noChange {
				// The retry returns the stored record as it is now.
				if !sameJSON(m, before.index[tt.id]) {
					t.Errorf("re-enrol = %s, want the stored record %s", jsonOf(m), jsonOf(before.index[tt.id]))
				}
				assertUnchanged(t, s, before)
				return
			}
			tok, _ := s.Token(tokens[tt.token])
			if tok.UsesLeft != tokBefore.UsesLeft-1 {
				t.Errorf("UsesLeft = %d, want %d", tok.UsesLeft, tokBefore.UsesLeft-1)
			}
		})
	}
}

func TestEnrollTokenUses(t *testing.T) {
	s, _ := newStore(t)
	mustClient(t, s, "acme")
	hash := mustToken(t, s, "acme", 2, t0.Add(time.Hour))
	for i, id := range []string{"m1", "m2"} {
		mustEnroll(t, s, hash, id, "web-"+id)
		if tok, _ := s.Token(hash); tok.UsesLeft != 1-i {
			t.Errorf("after %d enrolments UsesLeft = %d, want %d", i+1, tok.UsesLeft, 1-i)
		}
	}
	before := capture(t, s)
	_, err := s.Enroll(EnrollRequest{TokenHash: hash, MachineID: "m3", Name: "web-m3", Now: t0})
	if !errors.Is(err, ErrTokenUsedUp) {
		t.Fatalf("third Enroll = %v, want ErrTokenUsedUp", err)
	}
	assertUnchanged(t, s, before)
	if _, ok := s.Machine("m3"); ok {
		t.Error("refused machine is in the index")
	}
}

// A token with uses left is shared by agents enrolling at the same moment:
// exactly as many as it has uses get in.
func TestEnrollConcurrentTokenUses(t *testing.T) {
	s, _ := newStore(t)
	mustClient(t, s, "acme")
	const uses, agents = 5, 20
	hash := mustToken(t, s, "acme", uses, t0.Add(time.Hour))
	errs := make(chan error, agents)
	for i := range agents {
		go func() {
			id := string(rune('a'+i)) + "-machine"
			_, err := s.Enroll(EnrollRequest{TokenHash: hash, MachineID: id, Name: id, Now: t0})
			errs <- err
		}()
	}
	var ok, usedUp int
	for range agents {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, ErrTokenUsedUp):
			usedUp++
		default:
			t.Errorf("Enroll: %v", err)
		}
	}
	if ok != uses || usedUp != agents-uses || len(s.Machines()) != uses {
		t.Errorf("%d enrolled, %d used up, %d machines; want %d, %d, %d", ok, usedUp, len(s.Machines()), uses, agents-uses, uses)
	}
}
