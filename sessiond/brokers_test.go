package sessiond

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

func info(id, region string) wire.BrokerInfo {
	return wire.BrokerInfo{PeerID: id, Region: region, Addrs: []string{"/ip4/127.0.0.1/udp/1/quic-v1/p2p/" + id}}
}

func TestBrokerSetPrefersHomeRegion(t *testing.T) {
	s := newBrokerSet(info("home", "eu"), nil)
	if !s.learn([]wire.BrokerInfo{info("us1", "us"), info("eu2", "eu"), info("home", "eu")}) {
		t.Fatal("learning two new brokers reported no change")
	}
	var order []string
	for _, b := range s.all() {
		order = append(order, b.PeerID)
	}
	if got, want := order, []string{"home", "eu2", "us1"}; !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v (enrolled broker, its region, then others)", got, want)
	}
	if s.current().PeerID != "home" {
		t.Fatalf("current = %s, want home", s.current().PeerID)
	}
	if s.learn([]wire.BrokerInfo{info("eu2", "eu")}) {
		t.Fatal("learning a known broker again reported a change")
	}
}

func TestBrokerSetFailsOverAndBacksOffAfterAFullRound(t *testing.T) {
	s := newBrokerSet(info("a", "eu"), []wire.BrokerInfo{info("b", "eu"), info("c", "us")})
	var seen []string
	var backoffs []bool
	for i := 0; i < 6; i++ {
		seen = append(seen, s.current().PeerID)
		backoffs = append(backoffs, s.failed())
	}
	if want := []string{"a", "b", "c", "a", "b", "c"}; !slices.Equal(seen, want) {
		t.Fatalf("tried %v, want %v", seen, want)
	}
	if want := []bool{false, false, true, false, false, true}; !slices.Equal(backoffs, want) {
		t.Fatalf("back off after %v, want %v (only after every broker failed)", backoffs, want)
	}
	s.succeeded()
	if s.failed() {
		t.Fatal("a failure right after a success asked for a backoff")
	}
}

func TestBrokerSetKeepsCurrentAcrossReorder(t *testing.T) {
	s := newBrokerSet(info("a", "eu"), []wire.BrokerInfo{info("c", "us")})
	s.failed() // now on c
	s.learn([]wire.BrokerInfo{info("b", "eu")})
	if got := s.current().PeerID; got != "c" {
		t.Fatalf("current after reorder = %s, want c (the one being tried)", got)
	}
}

// TestBrokerSetForgetsBrokersThatLeft: brokers that left the cluster are
// dropped, but never the enrolled one nor the one in use.
func TestBrokerSetForgetsBrokersThatLeft(t *testing.T) {
	s := newBrokerSet(info("home", "eu"), []wire.BrokerInfo{info("eu2", "eu"), info("eu3", "eu"), info("us1", "us")})
	s.failed() // now on eu2
	if s.forget(nil) || s.forget([]string{"nowhere"}) {
		t.Fatal("forgetting unknown brokers reported a change")
	}
	if !s.forget([]string{"home", "eu2", "eu3"}) {
		t.Fatal("forgetting eu3 reported no change")
	}
	var ids []string
	for _, b := range s.all() {
		ids = append(ids, b.PeerID)
	}
	if want := []string{"home", "eu2", "us1"}; !slices.Equal(ids, want) {
		t.Fatalf("kept %v, want %v (the enrolled broker and the one in use stay)", ids, want)
	}
	if s.current().PeerID != "eu2" {
		t.Fatalf("current = %s, want eu2, still in use", s.current().PeerID)
	}
}

// TestBrokerSetBounded: a list longer than wire.MaxBrokers is not kept
// whole; brokers already known still get their new addresses.
func TestBrokerSetBounded(t *testing.T) {
	s := newBrokerSet(info("home", "eu"), nil)
	var many []wire.BrokerInfo
	for i := range 2 * wire.MaxBrokers {
		many = append(many, info(fmt.Sprint("b", i), "eu"))
	}
	s.learn(many)
	if n := len(s.all()); n != wire.MaxBrokers {
		t.Fatalf("kept %d brokers, want %d", n, wire.MaxBrokers)
	}
	moved := info("b1", "eu")
	moved.Addrs = []string{"/ip4/127.0.0.2/udp/9/quic-v1"}
	if !s.learn([]wire.BrokerInfo{moved}) || !slices.ContainsFunc(s.all(), func(b wire.BrokerInfo) bool {
		return b.PeerID == "b1" && b.Addrs[0] == moved.Addrs[0]
	}) {
		t.Fatal("a known broker's new address was not taken when the set was full")
	}
}

// newPeerInfo is a broker with a real peer ID, which the agent can dial.
func newPeerInfo(t *testing.T, name, region string) wire.BrokerInfo {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return wire.BrokerInfo{PeerID: id.String(), Name: name, Region: region,
		Addrs: []string{"/ip4/127.0.0.1/udp/7400/quic-v1/p2p/" + id.String()}}
}

// TestLearnedBrokersSurviveRestart: what the presence stream teaches the
// agent is kept in the local database, and a restarted agent starts from
// it, brokers that left forgotten; a broker that cannot be dialled is
// skipped.
func TestLearnedBrokersSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), DBFile)
	db, err := localdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	home, eu2, eu3 := newPeerInfo(t, "eu-1", "eu"), newPeerInfo(t, "eu-2", "eu"), newPeerInfo(t, "eu-3", "eu")
	e := localdb.Enrolment{MachineID: "m1", Name: "pc-1", Client: "acme", Broker: home}
	if err := db.SetEnrolment(e); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	a := &Agent{log: slog.New(slog.NewTextHandler(&logs, nil)), db: db, enrolment: e, brokers: newBrokerSet(home, nil)}
	bad := wire.BrokerInfo{PeerID: "not-a-peer-id", Name: "bad", Addrs: []string{"/ip4/127.0.0.1/udp/1/quic-v1"}}
	a.learnBrokers([]wire.BrokerInfo{home, eu2, eu3, bad}, nil) // the hello
	// Another broker's hello: the same brokers, eu-2 (itself) with /p2p/
	// and the others without. Nothing changed.
	plain := func(b wire.BrokerInfo) wire.BrokerInfo {
		b.Addrs = []string{strings.TrimSuffix(b.Addrs[0], "/p2p/"+b.PeerID)}
		return b
	}
	a.learnBrokers([]wire.BrokerInfo{eu2, plain(home), plain(eu3)}, nil)
	a.learnBrokers([]wire.BrokerInfo{home, eu2}, []string{eu3.PeerID}) // an ack: eu-3 left
	db.Close()
	if n := strings.Count(logs.String(), `msg="broker list changed"`); n != 2 {
		t.Errorf("the list changed %d times, want 2 (learned, then eu-3 left):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "skipping a broker that cannot be dialled") {
		t.Error("the broker with a bad peer ID was not reported")
	}

	db, err = localdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored, err := db.Enrolment()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range newBrokerSet(stored.Broker, stored.Brokers).all() {
		names = append(names, b.Name)
	}
	if want := []string{"eu-1", "eu-2"}; !slices.Equal(names, want) {
		t.Fatalf("after a restart the agent knows %v, want %v", names, want)
	}
}
