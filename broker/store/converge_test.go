package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// at sets a broker's clock to brokerStart plus d.
func (b *broker) at(d time.Duration) *Store {
	b.clock.Set(brokerStart.Add(d))
	return b.Store
}

func mustTechnician(tb testing.TB, s *Store, name string) string {
	tb.Helper()
	hash := wire.HashSecret(wire.NewSecret())
	if err := s.CreateTechnician(techArgs(name, "acme"), hash, t0.Add(time.Hour)); err != nil {
		tb.Fatalf("CreateTechnician(%s): %v", name, err)
	}
	return hash
}

func mustLogin(tb testing.TB, s *Store, hash, key string) {
	tb.Helper()
	if _, err := s.Login(hash, key, false, t0); err != nil {
		tb.Fatalf("Login(%s): %v", key, err)
	}
}

// checkInAt commits check-in seq of machine id, with snapshot content
// variant seq, at t0 plus d.
func checkInAt(tb testing.TB, s *Store, id string, seq uint64, d time.Duration) {
	tb.Helper()
	mustCheckIn(tb, s, checkIn(id, seq, testSnapshot("host-"+id, int(seq))), t0.Add(d))
}

func clockOf(tb testing.TB, s *Store, k Key) Clock {
	tb.Helper()
	for _, v := range s.BucketVersions(k.bucket()) {
		if v.Key == k {
			return v.Clock
		}
	}
	tb.Fatalf("%s not found", k)
	return Clock{}
}

// Two brokers cut off from each other both write, including conflicting
// writes to the same records; once they exchange digests, versions and
// records both ways they hold the same records byte for byte, and each
// conflict went the documented way.
func TestConvergeAfterPartition(t *testing.T) {
	east, west := newBroker(t, "east", 0), newBroker(t, "west", 0)

	// Before the partition east sets up, and west catches up.
	mustClient(t, east.at(0), "acme")
	mustClient(t, east.Store, "umbrella")
	tok := mustToken(t, east.Store, "acme", 4, t0.Add(time.Hour))
	mustEnroll(t, east.Store, tok, "m1", "web1")
	mustEnroll(t, east.Store, tok, "m2", "web2")
	kiosks := mustToken(t, east.Store, "acme", 2, t0.Add(time.Hour))
	alice := mustTechnician(t, east.Store, "alice")
	bob := mustTechnician(t, east.Store, "bob")
	if err := east.SetAdminHash(wire.HashSecret("east admin"), t0); err != nil {
		t.Fatal(err)
	}
	converge(t, east.Store, west.Store)
	assertConverged(t, east.Store, west.Store)

	// The partition.
	const sec = time.Second
	for seq := uint64(1); seq <= 5; seq++ { // m1: east commits later, but further
		checkInAt(t, east.Store, "m1", seq, time.Duration(seq)*time.Minute+10*sec)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		checkInAt(t, west.Store, "m1", seq, time.Duration(seq)*time.Minute)
	}
	checkInAt(t, east.Store, "m2", 1, 2*time.Minute) // m2: the same check-in, committed on both
	checkInAt(t, west.Store, "m2", 1, time.Minute)
	if err := east.SetLastSeen(map[string]time.Time{"m2": t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := west.SetLastSeen(map[string]time.Time{"m2": t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := east.at(1*sec).CreateClient("globex", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := west.at(2*sec).CreateClient("globex", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := east.at(3*sec).CreateClient("initech", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := west.at(3*sec).CreateClient("initech", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	initechWinner := west.Store
	if clockOf(t, east.Store, Key{KindClient, "initech"}).After(clockOf(t, west.Store, Key{KindClient, "initech"})) {
		initechWinner = east.Store
	}
	wantInitech := exportOne(t, initechWinner, Key{KindClient, "initech"})
	// The token has 2 uses left: east spends both, west one more.
	mustEnroll(t, east.Store, tok, "m3", "web3")
	mustEnroll(t, east.Store, tok, "m4", "web4")
	mustEnroll(t, west.Store, tok, "m5", "web5")
	// One name, two machines: west's enrolment is the earlier.
	if _, err := east.Enroll(EnrollRequest{TokenHash: kiosks, MachineID: "m6", Name: "kiosk", Now: t0.Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := west.Enroll(EnrollRequest{TokenHash: kiosks, MachineID: "m7", Name: "kiosk", Now: t0.Add(5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// alice's one-time login is used on both sides; bob is deleted on
	// east while west binds a key to him; the umbrella client is deleted
	// on west; both set an admin credential.
	mustLogin(t, east.Store, alice, "12D3KooWaliceEast")
	mustLogin(t, west.Store, alice, "12D3KooWaliceWest")
	mustLogin(t, west.at(4*sec), bob, "12D3KooWbobWest")
	if err := east.at(5 * sec).remove(Key{KindTechnician, "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := west.at(5 * sec).remove(Key{KindClient, "umbrella"}); err != nil {
		t.Fatal(err)
	}
	if err := east.at(6*sec).SetAdminHash(wire.HashSecret("east admin 2"), t0); err != nil {
		t.Fatal(err)
	}
	if err := west.at(7*sec).SetAdminHash(wire.HashSecret("west admin 2"), t0); err != nil {
		t.Fatal(err)
	}

	// The partition heals.
	if rounds := converge(t, east.Store, west.Store); rounds > 2 {
		t.Errorf("converged after %d rounds, want at most 2", rounds)
	}
	assertConverged(t, east.Store, west.Store)

	for _, b := range []*broker{east, west} {
		s := b.Store
		t.Run(b.cfg.Broker, func(t *testing.T) {
			// m1: east's seq 5 wins; the history is the union, and the
			// first commit of each seq (west's for 1-3).
			checkMachine(t, s, "m1", 5, 5*time.Minute+10*sec, 5*time.Minute+10*sec, 5, []uint64{5, 4, 3, 2, 1}, "web1")
			hist, _ := s.History("m1")
			for _, it := range hist {
				want := t0.Add(time.Duration(it.Seq) * time.Minute)
				if it.Seq > 3 {
					want = want.Add(10 * sec)
				}
				if !it.At.Equal(want) {
					t.Errorf("history seq %d at %v, want %v", it.Seq, it.At, want)
				}
			}
			// m2: the same check-in; west committed it first. last_seen is the later.
			checkMachine(t, s, "m2", 1, time.Minute, 2*time.Hour, 1, []uint64{1}, "web2")
			if cs, _ := s.Clients(); !slices.EqualFunc(cs, []string{"acme", "globex", "initech"},
				func(c wire.Client, n string) bool { return c.Name == n }) {
				t.Errorf("Clients = %s, want acme, globex, initech (umbrella deleted)", jsonOf(cs))
			}
			if got := exportOne(t, s, Key{KindClient, "globex"}); !got.Client.CreatedAt.Equal(t0.Add(2 * time.Hour)) {
				t.Errorf("globex = %s, want west's (the later clock)", jsonOf(got))
			}
			if got := exportOne(t, s, Key{KindClient, "initech"}); !sameJSON(got, wantInitech) {
				t.Errorf("initech = %s, want %s (the later clock, then origin)", jsonOf(got), jsonOf(wantInitech))
			}
			// The token: 4 granted, 4 spent on east and 1 on west: used up.
			rec := exportOne(t, s, Key{KindToken, tok}).Token
			if rec.UsesLeft != 0 || rec.Spent["east"] != 4 || rec.Spent["west"] != 1 {
				t.Errorf("token = %s, want used up with east 4, west 1", jsonOf(rec))
			}
			if _, err := s.Enroll(EnrollRequest{TokenHash: tok, MachineID: "m8", Name: "web8", Now: t0}); !errors.Is(err, ErrTokenUsedUp) {
				t.Errorf("Enroll after the partition = %v, want ErrTokenUsedUp", err)
			}
			for _, id := range []string{"m3", "m4", "m5", "m6", "m7"} {
				if _, ok := s.Machine(id); !ok {
					t.Errorf("machine %s missing", id)
				}
			}
			s.db.View(func(tx *bolt.Tx) error {
				if got := string(tx.Bucket(bktNames).Get(nameKey("acme", "kiosk"))); got != "m7" {
					t.Errorf("acme/kiosk is held by %q, want m7 (the earlier enrolment)", got)
				}
				return nil
			})
			// alice: used on both sides, both keys bound.
			for _, key := range []string{"12D3KooWaliceEast", "12D3KooWaliceWest"} {
				if tech, err := s.TechnicianByKey(key); err != nil || tech.Name != "alice" {
					t.Errorf("TechnicianByKey(%s) = %q, %v; want alice", key, tech.Name, err)
				}
			}
			if _, err := s.Login(alice, "12D3KooWthird", false, t0); !errors.Is(err, ErrTokenUnknown) {
				t.Errorf("third use of alice's login = %v, want ErrTokenUnknown", err)
			}
			// bob: the deletion is later than his creation; his key is gone.
			if _, err := s.TechnicianByKey("12D3KooWbobWest"); !errors.Is(err, ErrNotFound) {
				t.Errorf("TechnicianByKey(deleted bob's key) = %v, want ErrNotFound", err)
			}
			if got := s.AdminHash(); got != wire.HashSecret("west admin 2") {
				t.Errorf("AdminHash = %s, want west's (the later clock)", got)
			}
		})
	}

	// Nothing changes on reopen, and nothing more is exchanged.
	d := east.Digest()
	east.reopen(t)
	if east.Digest() != d {
		t.Error("digest changed on reopen")
	}
	if n := pull(t, east.Store, west.Store) + pull(t, west.Store, east.Store); n != 0 {
		t.Errorf("%d records exchanged after convergence, want 0", n)
	}
}

// A broker that joins with an empty disk catches up on everything in one
// exchange.
func TestCatchUpFromEmpty(t *testing.T) {
	east, west := newBroker(t, "east", 5), newBroker(t, "west", 5)
	seedFleet(t, east.Store, ids("12D3KooWfleet", 1000), 7)
	alice := mustTechnician(t, east.Store, "alice")
	mustLogin(t, east.Store, alice, "12D3KooWalice")
	if err := east.SetAdminHash(wire.HashSecret("admin"), t0); err != nil {
		t.Fatal(err)
	}

	if n := pull(t, west.Store, east.Store); n != 1000+5 { // machines, acme, token, alice, admin tech, admin
		t.Errorf("catch-up moved %d records, want 1005", n)
	}
	assertConverged(t, east.Store, west.Store)
	if got, want := len(west.Machines()), 1000; got != want {
		t.Errorf("west has %d machines, want %d", got, want)
	}
	if got := historySeqs(t, west.Store, "12D3KooWfleet0999"); !slices.Equal(got, []uint64{7, 6, 5, 4, 3}) {
		t.Errorf("history = %v, want the newest 5", got)
	}
	if tech, err := west.TechnicianByKey("12D3KooWalice"); err != nil || tech.Name != "alice" {
		t.Errorf("TechnicianByKey on west = %q, %v", tech.Name, err)
	}
	if n := pull(t, east.Store, west.Store); n != 0 {
		t.Errorf("east imported %d records from the copy of itself, want 0", n)
	}
	// The copy takes new check-ins where the original left off.
	checkInAt(t, west.Store, "12D3KooWfleet0001", 8, time.Hour)
	pull(t, east.Store, west.Store)
	assertConverged(t, east.Store, west.Store)
}

// seedFleet enrols machines in client acme and gives each checkIns
// check-ins, one minute apart.
func seedFleet(tb testing.TB, s *Store, machines []string, checkIns int) {
	tb.Helper()
	if !s.ClientExists("acme") {
		mustClient(tb, s, "acme")
	}
	tok := mustToken(tb, s, "acme", len(machines), t0.Add(time.Hour))
	cis := make([]*wire.CheckIn, len(machines))
	for i, id := range machines {
		mustEnroll(tb, s, tok, id, fmt.Sprintf("host-%d", i))
		cis[i] = checkIn(id, 0, testSnapshot("host-"+id, i))
	}
	for seq := 1; seq <= checkIns; seq++ {
		errs := make(chan error, len(cis))
		for _, ci := range cis {
			go func() {
				c := *ci
				c.Seq = uint64(seq)
				_, err := s.CheckIn(&c, t0.Add(time.Duration(seq)*time.Minute))
				errs <- err
			}()
		}
		for range cis {
			if err := <-errs; err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// The digest rebuilt at Open equals the one kept up to date in memory,
// bucket by bucket and version by version, after every kind of write.
func TestDigestSurvivesReopen(t *testing.T) {
	east, west := newBroker(t, "east", 3), newBroker(t, "west", 3)
	seedFleet(t, east.Store, ids("m", 40), 5)
	seedFleet(t, west.Store, ids("w", 10), 2)
	alice := mustTechnician(t, east.Store, "alice")
	mustLogin(t, east.Store, alice, "12D3KooWalice")
	mustTechnician(t, east.Store, "bob")
	if err := east.remove(Key{KindTechnician, "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := east.SetAdminHash(wire.HashSecret("admin"), t0); err != nil {
		t.Fatal(err)
	}
	if err := east.SetLastSeen(map[string]time.Time{"m0001": t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	converge(t, east.Store, west.Store)

	d := east.Digest()
	var versions [][]Version
	for b := range DigestBuckets {
		versions = append(versions, east.BucketVersions(b))
	}
	if d == (Digest{}) {
		t.Fatal("empty digest")
	}
	east.reopen(t)
	if got := east.Digest(); got != d {
		t.Errorf("digest after reopen differs in buckets %v", east.DiffBuckets(d))
	}
	for b := range DigestBuckets {
		if got := east.BucketVersions(b); !sameJSON(got, versions[b]) {
			t.Errorf("bucket %d after reopen:\n%s\nwant\n%s", b, jsonOf(got), jsonOf(versions[b]))
		}
	}
	// The digest counts every record once.
	total := 0
	for _, b := range d.Buckets {
		total += int(b.Count)
	}
	if want := len(allKeys(east.Store)); total != want || want != 50+1+2+3+1 {
		t.Errorf("digest counts %d records, store holds %d, want 57", total, want)
	}
}

// Tombstones are kept for TombstoneTTL after the deletion's clock, then
// dropped; an expired tombstone from another broker is not stored, and
// is not wanted.
func TestTombstoneExpiry(t *testing.T) {
	east, west := newBroker(t, "east", 0), newBroker(t, "west", 0)
	mustClient(t, east.Store, "acme")
	mustClient(t, east.Store, "globex")
	converge(t, east.Store, west.Store)
	if err := east.remove(Key{KindClient, "globex"}); err != nil {
		t.Fatal(err)
	}
	tomb := exportOne(t, east.Store, Key{KindClient, "globex"})
	converge(t, east.Store, west.Store)

	east.clock.Advance(DefaultTombstoneTTL - time.Minute)
	if n, err := east.PurgeTombstones(); n != 0 || err != nil {
		t.Errorf("PurgeTombstones before the TTL = %d, %v", n, err)
	}
	east.clock.Advance(2 * time.Minute)
	if n, err := east.PurgeTombstones(); n != 1 || err != nil {
		t.Errorf("PurgeTombstones after the TTL = %d, %v; want 1", n, err)
	}
	if keys := east.Want(west.BucketVersions(tomb.Key.bucket())); slices.Contains(keys, tomb.Key) {
		t.Error("east wants an expired tombstone back")
	}
	before := capture(t, east.Store)
	if res := mustImport(t, east.Store, tomb); res.Unchanged != 1 {
		t.Errorf("Import(expired tombstone) = %+v, want unchanged", res)
	}
	assertUnchanged(t, east.Store, before)

	// West, whose clock is behind, still has it, and drops it when it
	// reopens later.
	west.clock.Set(east.clock.Now())
	west.reopen(t)
	assertConverged(t, east.Store, west.Store)
}

// Two brokers left with the default name write at the same instant: their
// clocks are equal, and they still converge (on the greater content).
func TestConvergeWithSharedName(t *testing.T) {
	a, b := newBroker(t, DefaultBroker, 0), newBroker(t, DefaultBroker, 0)
	for i, s := range []*Store{a.Store, b.Store} {
		if _, err := s.CreateClient("acme", t0.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if ca, cb := clockOf(t, a.Store, Key{KindClient, "acme"}), clockOf(t, b.Store, Key{KindClient, "acme"}); ca != cb {
		t.Fatalf("clocks %v and %v differ; the test wants them equal", ca, cb)
	}
	converge(t, a.Store, b.Store)
	assertConverged(t, a.Store, b.Store)
	if got := exportOne(t, a.Store, Key{KindClient, "acme"}); !got.Client.CreatedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("acme = %s, want the later creation time (the greater content)", jsonOf(got))
	}
}

// Every broker creates the admin technician when it first starts. Those
// are one technician: a key bound to it on one broker stays bound when
// another broker's (later) admin record arrives.
func TestAdminTechnicianIsShared(t *testing.T) {
	east, west := newBroker(t, "east", 0), newBroker(t, "west", 0)
	if err := east.at(0).SetAdminHash(wire.HashSecret("east"), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Login("", "12D3KooWeastAdmin", true, t0); err != nil {
		t.Fatal(err)
	}
	if err := west.at(time.Second).SetAdminHash(wire.HashSecret("west"), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := west.Login("", "12D3KooWwestAdmin", true, t0); err != nil {
		t.Fatal(err)
	}
	converge(t, east.Store, west.Store)
	assertConverged(t, east.Store, west.Store)
	for _, s := range []*Store{east.Store, west.Store} {
		for _, key := range []string{"12D3KooWeastAdmin", "12D3KooWwestAdmin"} {
			if tech, err := s.TechnicianByKey(key); err != nil || tech.Name != AdminName {
				t.Errorf("TechnicianByKey(%s) = %q, %v; want admin", key, tech.Name, err)
			}
		}
	}
}
