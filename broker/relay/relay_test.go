package relay

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRelaySlotsOfferedCount: offered relay slots count against the
// per-peer limit, so offers nobody joins cannot fill the relay, and they
// free themselves once expired.
func TestRelaySlotsOfferedCount(t *testing.T) {
	now := time.Unix(1000, 0)
	r := New(Config{MaxPerPeer: 3, MaxSessions: 100, Now: func() time.Time { return now }})
	tech := peer.ID("tech")
	for i := range 3 {
		if err := r.Expect(sessionIDForTest(i), tech, peer.ID("agent"+string(rune('a'+i))), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Expect(sessionIDForTest(9), tech, peer.ID("agentz"), now.Add(time.Minute)); err == nil {
		t.Fatal("a fourth offered slot for one technician was admitted")
	}
	now = now.Add(2 * time.Minute)
	if err := r.Expect(sessionIDForTest(10), tech, peer.ID("agentz"), now.Add(time.Minute)); err != nil {
		t.Fatalf("expired offers still count: %v", err)
	}
}

// TestRelayFull: past MaxSessions offered slots, the relay refuses.
func TestRelayFull(t *testing.T) {
	now := time.Unix(1000, 0)
	r := New(Config{MaxPerPeer: 10, MaxSessions: 2, Now: func() time.Time { return now }})
	for i := range 2 {
		if err := r.Expect(sessionIDForTest(i), peer.ID("tech"+string(rune('a'+i))), peer.ID("agent"), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Expect(sessionIDForTest(5), "techz", "agentz", now.Add(time.Minute)); err == nil {
		t.Fatal("a slot beyond MaxSessions was admitted")
	}
	r.Forget(sessionIDForTest(0))
	if err := r.Expect(sessionIDForTest(5), "techz", "agentz", now.Add(time.Minute)); err != nil {
		t.Fatalf("a forgotten slot still counts: %v", err)
	}
}

func sessionIDForTest(i int) string { return string(rune('a'+i)) + "0000000000000000000000000000000" }
