package broker

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestSessionRate(t *testing.T) {
	var r sessionRate
	p := "tech"
	now := time.Unix(1000, 0)
	for i := range sessionBurst {
		if !r.allow(p, now) {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	if r.allow(p, now) {
		t.Fatal("request beyond the burst allowed")
	}
	if !r.allow("other", now) {
		t.Fatal("another technician was limited too")
	}
	if !r.allow(p, now.Add(sessionEvery)) || r.allow(p, now.Add(sessionEvery)) {
		t.Fatal("one request per interval after the burst")
	}
}

// TestRelaySlotsOfferedCount: offered relay slots count against the
// per-peer limit, so offers nobody joins cannot fill the relay, and they
// free themselves once expired.
func TestRelaySlotsOfferedCount(t *testing.T) {
	now := time.Unix(1000, 0)
	cfg := Config{DataDir: "x", RelayMaxPerPeer: 3, RelayMaxSessions: 100, Now: func() time.Time { return now }}
	cfg.setDefaults()
	r := newRelays(&Broker{cfg: cfg})
	tech := peer.ID("tech")
	for i := range 3 {
		if err := r.expect(sessionIDForTest(i), tech, peer.ID("agent"+string(rune('a'+i))), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.expect(sessionIDForTest(9), tech, peer.ID("agentz"), now.Add(time.Minute)); err == nil {
		t.Fatal("a fourth offered slot for one technician was admitted")
	}
	now = now.Add(2 * time.Minute)
	if err := r.expect(sessionIDForTest(10), tech, peer.ID("agentz"), now.Add(time.Minute)); err != nil {
		t.Fatalf("expired offers still count: %v", err)
	}
}

func sessionIDForTest(i int) string { return string(rune('a'+i)) + "0000000000000000000000000000000" }
