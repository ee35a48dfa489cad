package cluster

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
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

// TestPushStateNotesLimit: with more notes than fit, push/pull carries
// the newest that keep the whole state under maxState (and so under
// memberlist's 20 MiB), says so once, and still carries all presence.
// 100,000 machines with 512-byte notes would need about 60 MB.
func TestPushStateNotesLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, ProfileLAN)
		c := l.node("broker-0", nil)
		now := time.Now()
		const n = 100_000
		body := []byte(strings.Repeat("n", MaxNote))
		for i := range n {
			c.SetOnline(machineID(i), now)
			c.SetNote(machineID(i), now.Add(time.Duration(i)*time.Millisecond), body)
		}
		b := c.localState(false)
		s, err := decodeState(b)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d bytes: %d presence items, %d of %d notes", len(b), len(s.sections[0].items), len(s.notes), n)
		if len(b) > maxState || len(s.sections[0].items) != n || len(s.notes) == 0 || len(s.notes) == n {
			t.Errorf("state of %d bytes with %d notes", len(b), len(s.notes))
		}
		for _, nt := range s.notes {
			if nt.machine < machineID(n-len(s.notes)) {
				t.Fatalf("an older note (%s) sent while newer ones were left out", nt.machine)
			}
		}
		c.localState(false)
		if w := l.logs.grep("WARN push/pull carries only the newest machine notes"); len(w) != 1 {
			t.Errorf("%d warnings, want 1", len(w))
		}
	})
}
