package store

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// mspec describes a machine record another broker might send. Durations
// are offsets from t0; zero seen means no last_seen.
type mspec struct {
	seq      uint64
	at       time.Duration // commit time of the latest check-in
	seen     time.Duration
	variant  int      // snapshot content
	hist     []uint64 // history seqs, newest first
	name     string   // "" means "web"
	enrolled time.Duration
}

// mrec builds a valid machine record for machine id from spec.
func mrec(tb testing.TB, id string, sp mspec) Record {
	tb.Helper()
	r := &MachineRecord{Name: cmp.Or(sp.name, "web"), Client: "acme", EnrolledAt: t0.Add(sp.enrolled)}
	if sp.seen != 0 {
		seen := t0.Add(sp.seen)
		r.LastSeen = &seen
	}
	if sp.seq > 0 {
		snap := testSnapshot("host-"+id, sp.variant)
		raw, _ := json.Marshal(&snap)
		sum := sha256.Sum256(raw)
		r.Snapshot = raw
		r.CheckIn = &CheckInMeta{Seq: sp.seq, At: t0.Add(sp.at), Reason: wire.ReasonInterval, BootID: snap.BootID,
			CollectedAt: snap.CollectedAt, Digest: hex.EncodeToString(sum[:])}
		r.FirstSeen = map[string]time.Time{}
		for _, u := range snap.PendingUpdates {
			r.FirstSeen[strings.ToLower(u.ID)] = t0
		}
		for _, seq := range sp.hist {
			at := t0.Add(time.Duration(seq) * time.Minute)
			if seq == sp.seq {
				at = t0.Add(sp.at)
			}
			r.History = append(r.History, wire.HistoryItem{Seq: seq, At: at, Reason: wire.ReasonInterval,
				AgentVersion: "0.4.2", Packages: 40, PendingUpdates: 4})
		}
	}
	rec := Record{Key: machineKey(id), Machine: r}
	if err := rec.Validate(); err != nil {
		tb.Fatalf("mrec(%s, %+v) is invalid: %v", id, sp, err)
	}
	return rec
}

func TestMergeMachine(t *testing.T) {
	m := time.Minute
	tests := []struct {
		name          string
		limit         int // history limit; 0 means 100
		local, remote mspec
		changed       bool
		// what m1 is afterwards
		seq      uint64
		at, seen time.Duration
		variant  int
		hist     []uint64
		mname    string
	}{
		{name: "higher seq wins",
			local:   mspec{seq: 3, at: 3 * m, seen: 3 * m, variant: 3, hist: []uint64{3, 2, 1}},
			remote:  mspec{seq: 5, at: 5 * m, seen: 5 * m, variant: 5, hist: []uint64{5, 4}},
			changed: true, seq: 5, at: 5 * m, seen: 5 * m, variant: 5, hist: []uint64{5, 4, 3, 2, 1}},
		{name: "lower seq changes nothing",
			local:  mspec{seq: 5, at: 5 * m, seen: 5 * m, variant: 5, hist: []uint64{5, 4, 3}},
			remote: mspec{seq: 3, at: 3 * m, seen: 3 * m, variant: 3, hist: []uint64{3}},
			seq:    5, at: 5 * m, seen: 5 * m, variant: 5, hist: []uint64{5, 4, 3}},
		{name: "lower seq brings only missing history",
			local:   mspec{seq: 5, at: 5 * m, seen: 5 * m, variant: 5, hist: []uint64{5, 4}},
			remote:  mspec{seq: 3, at: 3 * m, seen: 3 * m, variant: 3, hist: []uint64{3, 2}},
			changed: true, seq: 5, at: 5 * m, seen: 5 * m, variant: 5, hist: []uint64{5, 4, 3, 2}},
		{name: "equal seq is idempotent",
			local:  mspec{seq: 5, at: 5 * m, seen: 6 * m, variant: 5, hist: []uint64{5, 4}},
			remote: mspec{seq: 5, at: 5 * m, seen: 6 * m, variant: 5, hist: []uint64{5, 4}},
			seq:    5, at: 5 * m, seen: 6 * m, variant: 5, hist: []uint64{5, 4}},
		{name: "equal seq: the first commit wins",
			local:   mspec{seq: 5, at: 9 * m, seen: 9 * m, variant: 5, hist: []uint64{5}},
			remote:  mspec{seq: 5, at: 7 * m, variant: 5, hist: []uint64{5}},
			changed: true, seq: 5, at: 7 * m, seen: 9 * m, variant: 5, hist: []uint64{5}},
		{name: "equal seq: a later commit changes nothing",
			local:  mspec{seq: 5, at: 7 * m, seen: 9 * m, variant: 5, hist: []uint64{5}},
			remote: mspec{seq: 5, at: 9 * m, variant: 5, hist: []uint64{5}},
			seq:    5, at: 7 * m, seen: 9 * m, variant: 5, hist: []uint64{5}},
		{name: "last_seen: the later wins",
			local:   mspec{seq: 5, at: 5 * m, seen: time.Hour, variant: 5, hist: []uint64{5}},
			remote:  mspec{seq: 5, at: 5 * m, seen: 2 * time.Hour, variant: 5, hist: []uint64{5}},
			changed: true, seq: 5, at: 5 * m, seen: 2 * time.Hour, variant: 5, hist: []uint64{5}},
		{name: "last_seen: an earlier one changes nothing",
			local:  mspec{seq: 5, at: 5 * m, seen: time.Hour, variant: 5, hist: []uint64{5}},
			remote: mspec{seq: 5, at: 5 * m, seen: 30 * m, variant: 5, hist: []uint64{5}},
			seq:    5, at: 5 * m, seen: time.Hour, variant: 5, hist: []uint64{5}},
		{name: "last_seen merges even from an older check-in",
			local:   mspec{seq: 5, at: 5 * m, seen: 5 * m, variant: 5, hist: []uint64{5}},
			remote:  mspec{seq: 4, at: 4 * m, seen: time.Hour, variant: 4, hist: []uint64{4}},
			changed: true, seq: 5, at: 5 * m, seen: time.Hour, variant: 5, hist: []uint64{5, 4}},
		{name: "enrolment: the earlier wins",
			local:   mspec{seq: 5, at: 5 * m, variant: 5, hist: []uint64{5}, name: "web"},
			remote:  mspec{seq: 5, at: 5 * m, variant: 5, hist: []uint64{5}, name: "web-old", enrolled: -time.Hour},
			changed: true, seq: 5, at: 5 * m, variant: 5, hist: []uint64{5}, mname: "web-old"},
		{name: "enrolment: a later one changes nothing",
			local:  mspec{seq: 5, at: 5 * m, variant: 5, hist: []uint64{5}, name: "web"},
			remote: mspec{seq: 5, at: 5 * m, variant: 5, hist: []uint64{5}, name: "web-new", enrolled: time.Hour},
			seq:    5, at: 5 * m, variant: 5, hist: []uint64{5}, mname: "web"},
		{name: "history keeps the newest HistoryLimit", limit: 3,
			local:   mspec{seq: 5, at: 5 * m, variant: 5, hist: []uint64{5, 3, 1}},
			remote:  mspec{seq: 6, at: 6 * m, variant: 6, hist: []uint64{6, 4, 2}},
			changed: true, seq: 6, at: 6 * m, variant: 6, hist: []uint64{6, 5, 4}},
		{name: "history older than the limit changes nothing", limit: 3,
			local:  mspec{seq: 5, at: 5 * m, variant: 5, hist: []uint64{5, 4, 3}},
			remote: mspec{seq: 2, at: 2 * m, variant: 2, hist: []uint64{2, 1}},
			seq:    5, at: 5 * m, variant: 5, hist: []uint64{5, 4, 3}},
		{name: "enrolled, never checked in, then a check-in",
			local:   mspec{},
			remote:  mspec{seq: 1, at: m, seen: m, variant: 1, hist: []uint64{1}},
			changed: true, seq: 1, at: m, seen: m, variant: 1, hist: []uint64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newBroker(t, "east", tt.limit)
			mustImport(t, s.Store, mrec(t, "m1", tt.local))
			before := capture(t, s.Store)
			res := mustImport(t, s.Store, mrec(t, "m1", tt.remote))
			if got := res.Applied == 1; got != tt.changed || res.Applied+res.Unchanged != 1 {
				t.Errorf("Import = %+v, want changed %v", res, tt.changed)
			}
			if !tt.changed {
				assertUnchanged(t, s.Store, before)
			}
			checkMachine(t, s.Store, "m1", tt.seq, tt.at, tt.seen, tt.variant, tt.hist, cmp.Or(tt.mname, "web"))

			// The merge commutes: the records the other way round end the same.
			o := newBroker(t, "west", tt.limit)
			mustImport(t, o.Store, mrec(t, "m1", tt.remote))
			mustImport(t, o.Store, mrec(t, "m1", tt.local))
			assertConverged(t, s.Store, o.Store)
		})
	}
}

func checkMachine(t *testing.T, s *Store, id string, seq uint64, at, seen time.Duration, variant int, hist []uint64, name string) {
	t.Helper()
	m, ok := s.Machine(id)
	if !ok {
		t.Fatalf("machine %s missing", id)
	}
	if m.Name != name {
		t.Errorf("name = %q, want %q", m.Name, name)
	}
	switch {
	case seq == 0 && m.LastCheckIn != nil:
		t.Errorf("last check-in = %+v, want none", m.LastCheckIn)
	case seq > 0 && (m.LastCheckIn == nil || m.LastCheckIn.Seq != seq || !m.LastCheckIn.At.Equal(t0.Add(at))):
		t.Errorf("last check-in = %+v, want seq %d at %v", m.LastCheckIn, seq, t0.Add(at))
	}
	var gotSeen time.Time
	if m.LastSeen != nil {
		gotSeen = *m.LastSeen
	}
	if want := t0.Add(seen); seen == 0 && m.LastSeen != nil || seen != 0 && !gotSeen.Equal(want) {
		t.Errorf("last_seen = %v, want %v", m.LastSeen, want)
	}
	if seq > 0 {
		snap, err := s.Snapshot(id)
		if want := testSnapshot("host-"+id, variant); err != nil || !sameJSON(snap, &want) || m.Hostname != want.Hostname {
			t.Errorf("snapshot is not variant %d (%v)", variant, err)
		}
	}
	if got := historySeqs(t, s, id); !slices.Equal(got, hist) && len(got)+len(hist) > 0 {
		t.Errorf("history seqs = %v, want %v", got, hist)
	}
}

// clockAt is a clock at t0 plus d.
func clockAt(d time.Duration, counter uint32, origin string) Clock {
	return Clock{Wall: t0.Add(d).UnixMilli(), Counter: counter, Origin: origin}
}

func stamp(born, clock Clock) Stamp { return Stamp{Born: born, Clock: clock} }

func clientRec(name string, created time.Duration, st Stamp) Record {
	c := &ClientRecord{Name: name, Stamp: st}
	if !st.Deleted {
		c.CreatedAt = t0.Add(created)
	}
	return Record{Key: Key{KindClient, name}, Client: c}
}

func tokenRec(hash string, uses int, spent map[string]int, st Stamp) Record {
	t := &TokenRecord{Stamp: st}
	if !st.Deleted {
		t.Token = Token{Client: "acme", Uses: uses, ExpiresAt: t0.Add(time.Hour), CreatedBy: "admin", CreatedAt: t0}
		t.Spent = spent
		t.settle()
	}
	return Record{Key: Key{KindToken, hash}, Token: t}
}

func techRec(name string, keys []string, loginHash string, used bool, st Stamp) Record {
	t := &TechnicianRecord{Stamp: st}
	t.Name = name
	if !st.Deleted {
		t.Technician = Technician{Technician: wire.Technician{Name: name, Clients: []string{"acme"},
			Modes: []string{wire.ModeReadOnly}, Keys: keys, CreatedAt: t0}, LoginHash: loginHash, LoginExpiresAt: t0.Add(time.Hour)}
		t.LoginUsed = used
	}
	return Record{Key: Key{KindTechnician, name}, Technician: t}
}

func adminRec(hash string, st Stamp) Record {
	return Record{Key: Key{KindAdmin, AdminName}, Admin: &AdminRecord{Hash: hash, Stamp: st}}
}

func TestMergeControl(t *testing.T) {
	s1, s2, s3 := clockAt(time.Second, 0, "east"), clockAt(2*time.Second, 0, "west"), clockAt(3*time.Second, 0, "east")
	tieEast, tieWest := clockAt(time.Second, 4, "east"), clockAt(time.Second, 4, "west")
	del := func(born, clock Clock) Stamp { return Stamp{Born: born, Clock: clock, Deleted: true} }
	login := wire.HashSecret("alice login")
	tests := []struct {
		name          string
		local, remote Record
		want          Record // the stored record afterwards
	}{
		{name: "client: the later clock wins",
			local: clientRec("acme", 0, stamp(s1, s1)), remote: clientRec("acme", time.Hour, stamp(s2, s2)),
			want: clientRec("acme", time.Hour, stamp(s2, s2))},
		{name: "client: an earlier clock loses",
			local: clientRec("acme", time.Hour, stamp(s2, s2)), remote: clientRec("acme", 0, stamp(s1, s1)),
			want: clientRec("acme", time.Hour, stamp(s2, s2))},
		{name: "client: same millisecond, the higher counter wins",
			local: clientRec("acme", 0, stamp(s1, s1)), remote: clientRec("acme", time.Hour, stamp(tieEast, tieEast)),
			want: clientRec("acme", time.Hour, stamp(tieEast, tieEast))},
		{name: "client: same wall and counter, the greater origin wins",
			local: clientRec("acme", 0, stamp(tieWest, tieWest)), remote: clientRec("acme", time.Hour, stamp(tieEast, tieEast)),
			want: clientRec("acme", 0, stamp(tieWest, tieWest))},
		{name: "client: tie-break by origin the other way round",
			local: clientRec("acme", time.Hour, stamp(tieEast, tieEast)), remote: clientRec("acme", 0, stamp(tieWest, tieWest)),
			want: clientRec("acme", 0, stamp(tieWest, tieWest))},
		{name: "client: one clock, two writes (brokers sharing a name): the greater content wins",
			local: clientRec("acme", 0, stamp(s1, s1)), remote: clientRec("acme", time.Hour, stamp(s1, s1)),
			want: clientRec("acme", time.Hour, stamp(s1, s1))},
		{name: "tombstone beats an older write",
			local: clientRec("acme", 0, stamp(s1, s1)), remote: clientRec("acme", 0, del(s1, s2)),
			want: clientRec("acme", 0, del(s1, s2))},
		{name: "an older write loses to a tombstone",
			local: clientRec("acme", 0, del(s1, s2)), remote: clientRec("acme", 0, stamp(s1, s1)),
			want: clientRec("acme", 0, del(s1, s2))},
		{name: "tombstone loses to a newer write",
			local: clientRec("acme", 0, del(s1, s2)), remote: clientRec("acme", time.Hour, stamp(s3, s3)),
			want: clientRec("acme", time.Hour, stamp(s3, s3))},
		{name: "token: use counters merge by broker, uses never go back",
			local:  tokenRec("tok1", 5, map[string]int{"east": 2}, stamp(s1, s1)),
			remote: tokenRec("tok1", 5, map[string]int{"east": 1, "west": 1}, stamp(s1, s1)),
			want:   tokenRec("tok1", 5, map[string]int{"east": 2, "west": 1}, stamp(s1, s1))},
		{name: "token: a copy with fewer uses changes nothing",
			local:  tokenRec("tok1", 5, map[string]int{"east": 2, "west": 1}, stamp(s1, s1)),
			remote: tokenRec("tok1", 5, nil, stamp(s1, s1)),
			want:   tokenRec("tok1", 5, map[string]int{"east": 2, "west": 1}, stamp(s1, s1))},
		{name: "token: overuse in a partition leaves it used up",
			local:  tokenRec("tok1", 2, map[string]int{"east": 2}, stamp(s1, s1)),
			remote: tokenRec("tok1", 2, map[string]int{"east": 1, "west": 1}, stamp(s1, s1)),
			want:   tokenRec("tok1", 2, map[string]int{"east": 2, "west": 1}, stamp(s1, s1))},
		{name: "token: tombstone beats uses",
			local:  tokenRec("tok1", 5, map[string]int{"east": 2}, stamp(s1, s1)),
			remote: tokenRec("tok1", 0, nil, del(s1, s2)),
			want:   tokenRec("tok1", 0, nil, del(s1, s2))},
		{name: "technician: keys merge as a set",
			local:  techRec("alice", []string{"12D3KooWk1"}, "", true, stamp(s1, s1)),
			remote: techRec("alice", []string{"12D3KooWk0", "12D3KooWk2"}, "", true, stamp(s1, s1)),
			want:   techRec("alice", []string{"12D3KooWk0", "12D3KooWk1", "12D3KooWk2"}, "", true, stamp(s1, s1))},
		{name: "technician: a used one-time login wins",
			local:  techRec("alice", nil, login, false, stamp(s1, s1)),
			remote: techRec("alice", []string{"12D3KooWk1"}, "", true, stamp(s1, s1)),
			want:   techRec("alice", []string{"12D3KooWk1"}, "", true, stamp(s1, s1))},
		{name: "technician: an unused login does not come back",
			local:  techRec("alice", []string{"12D3KooWk1"}, "", true, stamp(s1, s1)),
			remote: techRec("alice", nil, login, false, stamp(s1, s1)),
			want:   techRec("alice", []string{"12D3KooWk1"}, "", true, stamp(s1, s1))},
		{name: "technician: a newer write keeps keys bound in its incarnation",
			local:  techRec("alice", []string{"12D3KooWk1"}, "", true, stamp(s1, s1)),
			remote: techRec("alice", nil, login, false, stamp(s1, s2)),
			want:   techRec("alice", []string{"12D3KooWk1"}, "", true, stamp(s1, s2))},
		{name: "technician: keys of a deleted incarnation do not come back",
			local:  techRec("alice", nil, "", false, del(s1, s2)),
			remote: techRec("alice", []string{"12D3KooWk1"}, "", true, stamp(s1, s1)),
			want:   techRec("alice", nil, "", false, del(s1, s2))},
		{name: "technician: a new incarnation starts without the old keys",
			local:  techRec("alice", []string{"12D3KooWk1"}, "", true, stamp(s1, s1)),
			remote: techRec("alice", nil, login, false, stamp(s3, s3)),
			want:   techRec("alice", nil, login, false, stamp(s3, s3))},
		{name: "admin credential: the later clock wins",
			local: adminRec(wire.HashSecret("east"), stamp(s1, s1)), remote: adminRec(wire.HashSecret("west"), stamp(s1, s2)),
			want: adminRec(wire.HashSecret("west"), stamp(s1, s2))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, order := range []string{"local first", "remote first"} {
				a, b := tt.local, tt.remote
				if order == "remote first" {
					a, b = b, a
				}
				s := newBroker(t, "east", 0)
				mustImport(t, s.Store, a)
				mustImport(t, s.Store, b)
				mustImport(t, s.Store, a, b) // idempotent
				if got := exportOne(t, s.Store, tt.want.Key); !sameJSON(got, tt.want) {
					t.Errorf("%s: stored\n%s\nwant\n%s", order, jsonOf(got), jsonOf(tt.want))
				}
			}
		})
	}
}

// What the merged control records mean to the store's readers: a
// tombstoned client is gone, a merged token counts every broker's uses, a
// used login cannot log in, and every key merged in is bound.
func TestMergeControlEffects(t *testing.T) {
	s1, s2 := clockAt(time.Second, 0, "east"), clockAt(2*time.Second, 0, "west")
	s := newBroker(t, "east", 0)
	login := wire.HashSecret("alice login")
	mustImport(t, s.Store, clientRec("acme", 0, stamp(s1, s1)), clientRec("globex", 0, stamp(s1, s1)),
		tokenRec("tok1", 3, map[string]int{"east": 1}, stamp(s1, s1)),
		techRec("alice", nil, login, false, stamp(s1, s1)))
	if !s.ClientExists("globex") {
		t.Fatal("globex missing")
	}
	mustImport(t, s.Store, clientRec("globex", 0, Stamp{Born: s1, Clock: s2, Deleted: true}),
		tokenRec("tok1", 3, map[string]int{"west": 2}, stamp(s1, s1)),
		techRec("alice", []string{"12D3KooWwest"}, "", true, stamp(s1, s1)))

	if s.ClientExists("globex") {
		t.Error("deleted client still exists")
	}
	if cs, _ := s.Clients(); len(cs) != 1 || cs[0].Name != "acme" {
		t.Errorf("Clients = %s, want acme only", jsonOf(cs))
	}
	if _, err := s.CreateClient("globex", t0); err != nil {
		t.Errorf("creating a deleted client again: %v", err)
	}
	if tok, err := s.Token("tok1"); err != nil || tok.UsesLeft != 0 {
		t.Errorf("Token = %+v, %v; want 0 uses left (1 here + 2 elsewhere of 3)", tok, err)
	}
	hash := mustToken(t, s.Store, "acme", 1, t0.Add(time.Hour))
	mustEnroll(t, s.Store, hash, "m1", "web1")
	if _, err := s.Enroll(EnrollRequest{TokenHash: "tok1", MachineID: "m2", Name: "web2", Now: t0}); !errors.Is(err, ErrTokenUsedUp) {
		t.Errorf("Enroll with a token used up elsewhere = %v, want ErrTokenUsedUp", err)
	}
	if _, err := s.Login(login, "12D3KooWeast", false, t0); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("Login with a login used elsewhere = %v, want ErrTokenUnknown", err)
	}
	if tech, err := s.TechnicianByKey("12D3KooWwest"); err != nil || tech.Name != "alice" {
		t.Errorf("TechnicianByKey(key bound elsewhere) = %q, %v; want alice", tech.Name, err)
	}

	// Deleting alice unbinds her keys.
	mustImport(t, s.Store, techRec("alice", nil, "", false, Stamp{Born: s1, Clock: s2, Deleted: true}))
	if _, err := s.TechnicianByKey("12D3KooWwest"); !errors.Is(err, ErrNotFound) {
		t.Errorf("TechnicianByKey(deleted technician's key) = %v, want ErrNotFound", err)
	}
	if techs, _ := s.Technicians(); len(techs) != 0 {
		t.Errorf("Technicians = %s, want none", jsonOf(techs))
	}
}

func TestMergeTokenAssociative(t *testing.T) {
	s1 := clockAt(time.Second, 0, "east")
	recs := []map[string]int{{"east": 3}, {"west": 1, "east": 1}, {"north": 2}, {"west": 4}}
	var want *TokenRecord
	for _, perm := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}, {1, 3, 0, 2}} {
		acc := tokenRec("t", 20, maps.Clone(recs[perm[0]]), stamp(s1, s1)).Token
		for _, i := range perm[1:] {
			acc = mergeToken(acc, tokenRec("t", 20, maps.Clone(recs[i]), stamp(s1, s1)).Token)
		}
		if want == nil {
			want = acc
		}
		if !sameJSON(acc, want) || acc.UsesLeft != 20-3-4-2 {
			t.Errorf("order %v: %s, want %s with 11 uses left", perm, jsonOf(acc), jsonOf(want))
		}
	}
}
