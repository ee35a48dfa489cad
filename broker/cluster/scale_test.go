package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// machineID makes a libp2p-peer-ID-sized machine ID (52 characters).
func machineID(i int) string {
	s := fmt.Sprintf("12D3KooW%044d", i)
	return s[:52]
}

// TestPushStateSize documents the push/pull cost per machine: about 66
// bytes for a 52-byte ID, so 100,000 machines make about 6.6 MB.
func TestPushStateSize(t *testing.T) {
	p := newPresence()
	now := time.Now()
	const n = 100_000
	for i := range n {
		origin := fmt.Sprintf("broker-%d", i%5)
		p.apply(origin, uint64(now.UnixNano()), item(machineID(i), uint64(i+1), true, now.UnixMilli()), now, noDirty)
	}
	b := pushState{sender: "broker-0", sections: p.sections("broker-0", n)}.encode()
	per := float64(len(b)) / n
	t.Logf("%d machines: %d bytes, %.1f bytes per machine", n, len(b), per)
	if per > 70 || len(b) > 10<<20 {
		t.Errorf("%.1f bytes per machine", per)
	}
}

// TestLateJoinerLargeTable: a broker joining a cluster that holds 100,000
// machines learns them all from its join's push/pull, over real loopback
// TCP with encryption.
func TestLateJoinerLargeTable(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	// The LAN profile: the exchange must fit in its TCPTimeout (10 s);
	// the local profile's 1 s is tight for 6 MB under the race detector.
	l := newLoopbackLab(t, ProfileLAN)
	a := l.node("a", nil, withKeys(key(1)))
	now := time.Now()
	const n = 100_000
	for i := range n {
		a.SetOnline(machineID(i), now)
	}
	start := time.Now()
	b := l.node("b", []string{a.LocalAddr()}, withKeys(key(1)))
	<-b.Joined()
	t.Logf("join with %d machines took %v", n, time.Since(start))
	for i := 0; i < n; i += 997 {
		if !held(b, machineID(i), "a", now) {
			t.Fatalf("machine %d missing", i)
		}
	}
	b.mu.Lock()
	size := b.pres.size()
	b.mu.Unlock()
	if size != n {
		t.Errorf("late joiner holds %d statements", size)
	}
	if w := l.logs.grep("WARN"); len(w) > 0 {
		t.Errorf("warnings: %s", strings.Join(w, "\n"))
	}
}
