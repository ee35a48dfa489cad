package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestTestSnapshotIsRealistic(t *testing.T) {
	snap := testSnapshot("web1", 7)
	if err := checkIn("m1", 1, snap).Validate(); err != nil {
		t.Fatalf("test snapshot is invalid: %v", err)
	}
	raw, _ := json.Marshal(&snap)
	if len(raw) < 3000 || len(raw) > 5500 {
		t.Errorf("test snapshot is %d bytes of JSON, want 3-5 KB", len(raw))
	}
}

func TestCheckInRoundTrip(t *testing.T) {
	s, cfg := enrolled(t, 0, "m1")
	snap := testSnapshot("web1-renamed", 1)
	ci := checkIn("m1", 1, snap)
	ci.Reason = wire.ReasonEnroll
	now := t0.Add(time.Minute).In(time.FixedZone("CET", 3600))
	at := t0.Add(time.Minute)

	res := mustCheckIn(t, s, ci, now)
	if res.Duplicate || res.StoredSeq != 1 || !res.StoredAt.Equal(at) {
		t.Errorf("CheckIn = %+v, want stored seq 1 at %v", res, at)
	}

	raw, _ := json.Marshal(&snap)
	sum := sha256.Sum256(raw)
	digest := hex.EncodeToString(sum[:])
	pending := slices.Clone(snap.PendingUpdates)
	for i := range pending {
		pending[i].FirstSeen = &at
	}
	wantHist := []wire.HistoryItem{{Seq: 1, At: at, Reason: wire.ReasonEnroll, BootID: snap.BootID,
		AgentVersion: "0.4.2", OSVersion: "12", Packages: 40, PendingUpdates: 4, Digest: digest}}
	rawItem, _ := json.Marshal(wantHist[0])
	want := Machine{ID: "m1", Rev: 2, Name: "name-m1", Client: "acme", Hostname: "web1-renamed",
		EnrolledAt: t0, LastSeen: &at,
		LastCheckIn: &CheckInMeta{Seq: 1, At: at, Reason: wire.ReasonEnroll, BootID: snap.BootID,
			CollectedAt: snap.CollectedAt, Digest: digest},
		OS: &snap.OS, AgentVersion: "0.4.2", PendingUpdates: pending, Runtime: snap.Runtime,
		Approval: snap.Approval, CollectorErrs: snap.CollectorErrs, HistorySlots: 1, HistoryNext: 1,
		HistoryHash: hash64(rawItem)}

	check := func(when string, s *Store) {
		t.Helper()
		if got, ok := s.Machine("m1"); !ok || !sameJSON(got, want) {
			t.Errorf("%s: Machine =\n%s\nwant\n%s", when, jsonOf(got), jsonOf(want))
		}
		if got, err := s.Snapshot("m1"); err != nil || !sameJSON(got, &snap) {
			t.Errorf("%s: Snapshot = %s, %v; want what was sent", when, jsonOf(got), err)
		}
		if got, err := s.History("m1"); err != nil || !sameJSON(got, wantHist) {
			t.Errorf("%s: History = %s, %v; want %s", when, jsonOf(got), err, jsonOf(wantHist))
		}
	}
	check("after check-in", s)
	s = reopen(t, s, cfg)
	check("after reopen", s)
}

func TestCheckInUnknownMachine(t *testing.T) {
	s, _ := enrolled(t, 0, "m1")
	before := capture(t, s)
	_, err := s.CheckIn(checkIn("m404", 1, testSnapshot("ghost", 1)), t0)
	if !errors.Is(err, ErrUnknownMachine) {
		t.Fatalf("CheckIn(unknown) = %v, want ErrUnknownMachine", err)
	}
	assertUnchanged(t, s, before)
	if snap, _ := s.Snapshot("m404"); snap != nil {
		t.Error("a snapshot was stored for an unknown machine")
	}
	if _, ok := s.Machine("m404"); ok {
		t.Error("unknown machine is in the index")
	}
}

func TestCheckInSequence(t *testing.T) {
	stored := testSnapshot("web1", 5) // stored at seq 5
	other := testSnapshot("web1", 50) // different content
	storedAt := t0.Add(5 * time.Minute)
	tests := []struct {
		name      string
		seq       uint64
		snap      wire.Snapshot
		wantErr   error
		duplicate bool
		wantSeq   uint64
	}{
		{name: "next seq", seq: 6, snap: other, wantSeq: 6},
		{name: "gap in seq", seq: 60, snap: other, wantSeq: 60},
		{name: "higher seq, same content", seq: 6, snap: stored, wantSeq: 6},
		{name: "same seq, same content", seq: 5, snap: stored, duplicate: true, wantSeq: 5},
		{name: "same seq, other content", seq: 5, snap: other, wantErr: ErrSequence, wantSeq: 5},
		{name: "lower seq, other content", seq: 4, snap: other, wantErr: ErrSequence, wantSeq: 5},
		{name: "lower seq, same content", seq: 4, snap: stored, wantErr: ErrSequence, wantSeq: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := enrolled(t, 0, "m1")
			mustCheckIn(t, s, checkIn("m1", 3, testSnapshot("web1", 3)), t0)
			mustCheckIn(t, s, checkIn("m1", 5, stored), storedAt)
			before := capture(t, s)
			now := t0.Add(time.Hour)

			res, err := s.CheckIn(checkIn("m1", tt.seq, tt.snap), now)
			if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
				t.Fatalf("CheckIn = %+v, %v; want error %v", res, err, tt.wantErr)
			}
			if res.StoredSeq != tt.wantSeq || res.Duplicate != tt.duplicate {
				t.Errorf("CheckIn = %+v, want StoredSeq %d, Duplicate %v", res, tt.wantSeq, tt.duplicate)
			}
			if tt.wantErr != nil || tt.duplicate {
				if !res.StoredAt.Equal(storedAt) {
					t.Errorf("StoredAt = %v, want when seq 5 was stored, %v", res.StoredAt, storedAt)
				}
				assertUnchanged(t, s, before)
				return
			}
			m, _ := s.Machine("m1")
			if m.LastCheckIn.Seq != tt.seq || !res.StoredAt.Equal(now) {
				t.Errorf("stored seq %d at %v, want %d at %v", m.LastCheckIn.Seq, res.StoredAt, tt.seq, now)
			}
			if got, want := historySeqs(t, s, "m1"), []uint64{tt.seq, 5, 3}; !slices.Equal(got, want) {
				t.Errorf("History seqs = %v, want %v", got, want)
			}
		})
	}
}

func TestCheckInHistoryLimit(t *testing.T) {
	s, cfg := enrolled(t, 5, "m1")
	for seq := uint64(1); seq <= 8; seq++ {
		mustCheckIn(t, s, checkIn("m1", seq, testSnapshot("web1", int(seq))), t0.Add(time.Duration(seq)*time.Minute))
	}
	want := []uint64{8, 7, 6, 5, 4}
	for _, when := range []string{"before reopen", "after reopen"} {
		if got := historySeqs(t, s, "m1"); !slices.Equal(got, want) {
			t.Errorf("%s: History seqs = %v, want %v", when, got, want)
		}
		if m, _ := s.Machine("m1"); m.HistorySlots != len(want) {
			t.Errorf("%s: HistorySlots = %d, want %d", when, m.HistorySlots, len(want))
		}
		s = reopen(t, s, cfg)
	}
}

// An operator lowers HistoryLimit and restarts the broker: the next
// check-in trims the history to the newest HistoryLimit items.
func TestCheckInHistoryLimitLowered(t *testing.T) {
	s, cfg := enrolled(t, 10, "m1")
	for seq := uint64(1); seq <= 8; seq++ {
		mustCheckIn(t, s, checkIn("m1", seq, testSnapshot("web1", int(seq))), t0)
	}
	cfg.HistoryLimit = 5
	s = reopen(t, s, cfg)
	mustCheckIn(t, s, checkIn("m1", 9, testSnapshot("web1", 9)), t0)
	if got, want := historySeqs(t, s, "m1"), []uint64{9, 8, 7, 6, 5}; !slices.Equal(got, want) {
		t.Errorf("History seqs = %v, want the 5 newest %v", got, want)
	}
	if m, _ := s.Machine("m1"); m.HistorySlots != 5 {
		t.Errorf("HistorySlots = %d, want 5", m.HistorySlots)
	}
}

func TestCheckInPendingUpdateFirstSeen(t *testing.T) {
	s, cfg := enrolled(t, 0, "m1")
	pending := func(ids ...string) wire.Snapshot {
		snap := testSnapshot("web1", 1)
		snap.PendingUpdates = nil
		for _, id := range ids {
			snap.PendingUpdates = append(snap.PendingUpdates, wire.PendingUpdate{ID: id, Source: "windows-update"})
		}
		return snap
	}
	t1, t2, t3 := t0, t0.Add(time.Hour), t0.Add(2*time.Hour)
	steps := []struct {
		snap wire.Snapshot
		now  time.Time
		want map[string]time.Time
	}{
		{pending("KB5034441", "KB5034763"), t1, map[string]time.Time{"KB5034441": t1, "KB5034763": t1}},
		// KB5034763 carries over, also when the agent changes its case;
		// KB5035845 is new; KB5034441 is gone.
		{pending("kb5034763", "KB5035845"), t2, map[string]time.Time{"kb5034763": t1, "KB5035845": t2}},
		// KB5034441 reappears: it is new again.
		{pending("KB5034441", "KB5034763", "KB5035845"), t3, map[string]time.Time{"KB5034441": t3, "KB5034763": t1, "KB5035845": t2}},
	}
	check := func(step int, s *Store, want map[string]time.Time) {
		t.Helper()
		m, _ := s.Machine("m1")
		got := map[string]time.Time{}
		for _, u := range m.PendingUpdates {
			if u.FirstSeen == nil {
				t.Errorf("step %d: %s has no FirstSeen", step, u.ID)
				continue
			}
			got[u.ID] = *u.FirstSeen
		}
		if !sameJSON(got, want) {
			t.Errorf("step %d: FirstSeen = %v, want %v", step, got, want)
		}
	}
	for i, st := range steps {
		mustCheckIn(t, s, checkIn("m1", uint64(i+1), st.snap), st.now)
		check(i+1, s, st.want)
	}
	// A refused check-in changes no FirstSeen.
	before := capture(t, s)
	if _, err := s.CheckIn(checkIn("m1", 2, pending()), t3.Add(time.Hour)); !errors.Is(err, ErrSequence) {
		t.Fatalf("stale CheckIn = %v, want ErrSequence", err)
	}
	assertUnchanged(t, s, before)
	s = reopen(t, s, cfg)
	check(len(steps), s, steps[len(steps)-1].want)
}

// The in-memory index must hold what was committed, not memory the caller
// still owns: a broker that reuses or changes a decoded check-in after the
// acknowledgement must not change the machine record behind the store's
// back.
func TestCheckInIndexDoesNotAliasCaller(t *testing.T) {
	s, cfg := enrolled(t, 0, "m1")
	ci := checkIn("m1", 1, testSnapshot("web1", 1))
	mustCheckIn(t, s, ci, t0)
	committed, _ := s.Machine("m1")
	committedJSON := jsonOf(committed)

	ci.Snapshot.CollectorErrs[0].Error = "changed after commit"
	*ci.Snapshot.Approval.ExpiresAt = t0.Add(-time.Hour)
	ci.Snapshot.PendingUpdates[0].ID = "changed-after-commit"
	ci.Snapshot.OS.Name = "changed after commit"

	if got, _ := s.Machine("m1"); jsonOf(got) != committedJSON {
		t.Errorf("index changed with the caller's memory:\n got %s\nwant %s", jsonOf(got), committedJSON)
	}
	s = reopen(t, s, cfg)
	if got, _ := s.Machine("m1"); jsonOf(got) != committedJSON {
		t.Errorf("record on disk differs from what the index returned:\n disk  %s\n index %s", jsonOf(got), committedJSON)
	}
}

// Many agents check in at once: every acknowledged check-in is readable
// afterwards, also after a restart, and refusals that share a batch with
// good check-ins do not disturb them.
func TestCheckInConcurrent(t *testing.T) {
	const agents, rounds = 64, 4
	ids := make([]string, agents)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%02d", i)
	}
	s, cfg := enrolled(t, 0, ids...)

	var mu sync.Mutex // guards acked
	acked := map[string][]uint64{}
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			for r := 1; r <= rounds; r++ {
				seq := uint64(r * 10)
				snap := testSnapshot(id, i*100+r)
				res, err := s.CheckIn(checkIn(id, seq, snap), t0.Add(time.Duration(r)*time.Minute))
				if err != nil || res.Duplicate || res.StoredSeq != seq {
					t.Errorf("CheckIn(%s, %d) = %+v, %v", id, seq, res, err)
					continue
				}
				mu.Lock()
				acked[id] = append(acked[id], seq)
				mu.Unlock()
				// A stale resend with other content and a retry of the
				// same check-in, racing with the other agents' batches.
				if _, err := s.CheckIn(checkIn(id, seq-1, testSnapshot(id, -r)), t0); !errors.Is(err, ErrSequence) {
					t.Errorf("stale CheckIn(%s, %d) = %v, want ErrSequence", id, seq-1, err)
				}
				if res, err := s.CheckIn(checkIn(id, seq, snap), t0); err != nil || !res.Duplicate {
					t.Errorf("retried CheckIn(%s, %d) = %+v, %v; want duplicate", id, seq, res, err)
				}
			}
		})
	}
	wg.Wait()

	check := func(when string, s *Store) {
		t.Helper()
		for i, id := range ids {
			seqs := acked[id]
			if len(seqs) == 0 {
				continue
			}
			last := seqs[len(seqs)-1]
			m, ok := s.Machine(id)
			if !ok || m.LastCheckIn == nil || m.LastCheckIn.Seq != last || m.HistorySlots != len(seqs) {
				t.Errorf("%s: Machine(%s) = %s, want last seq %d and %d history items", when, id, jsonOf(m), last, len(seqs))
			}
			got := historySeqs(t, s, id)
			slices.Reverse(got)
			if !slices.Equal(got, seqs) {
				t.Errorf("%s: History(%s) seqs = %v, want every acknowledged one %v", when, id, got, seqs)
			}
			want := testSnapshot(id, i*100+rounds)
			if snap, err := s.Snapshot(id); err != nil || !sameJSON(snap, &want) {
				t.Errorf("%s: Snapshot(%s) is not the last acknowledged one (%v)", when, id, err)
			}
		}
	}
	check("before reopen", s)
	s = reopen(t, s, cfg)
	check("after reopen", s)
}
