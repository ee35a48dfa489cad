package sessiond

import (
	"slices"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
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
