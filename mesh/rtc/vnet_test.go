package rtc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"
)

// NAT behaviours (RFC 4787) as pion vnet builds them.
var (
	fullCone = &vnet.NATType{
		MappingBehavior:   vnet.EndpointIndependent,
		FilteringBehavior: vnet.EndpointIndependent,
	}
	portRestricted = &vnet.NATType{
		MappingBehavior:   vnet.EndpointIndependent,
		FilteringBehavior: vnet.EndpointAddrPortDependent,
	}
	symmetric = &vnet.NATType{
		MappingBehavior:   vnet.EndpointAddrPortDependent,
		FilteringBehavior: vnet.EndpointAddrPortDependent,
	}
)

// TestNATPaths connects a technician and an agent across NAT combinations
// on a pion vnet internet with the broker's STUN/TURN server, and checks
// the path ICE picks is the one RFC 4787 predicts, and that echo works on
// it.
func TestNATPaths(t *testing.T) {
	for _, tc := range []struct {
		name     string
		off, ans *vnet.NATType // nil ans: both hosts on the offerer's LAN
		delay    time.Duration // one way, across the WAN
		kind     string
	}{
		// Host pairs usually win here, but with no srflx wait a pair
		// through the LAN's own NAT (vnet hairpins) can answer first
		// under load: still direct, so only the kind is checked.
		{"one LAN", portRestricted, nil, 0, PathDirect},
		{"port-restricted × port-restricted", portRestricted, portRestricted, 0, PathDirect},
		{"full cone × symmetric", fullCone, symmetric, 0, PathDirect},
		{"symmetric × full cone", symmetric, fullCone, 0, PathDirect},
		{"symmetric × port-restricted", symmetric, portRestricted, 0, PathRelayed},
		{"symmetric × symmetric", symmetric, symmetric, 0, PathRelayed},
		// With a WAN round trip of 100 ms the punched path must still
		// beat RelayWait.
		{"port-restricted × port-restricted, 100 ms RTT", portRestricted, portRestricted, 50 * time.Millisecond, PathDirect},
		{"symmetric × full cone, 100 ms RTT", symmetric, fullCone, 50 * time.Millisecond, PathDirect},
		{"symmetric × symmetric, 100 ms RTT", symmetric, symmetric, 50 * time.Millisecond, PathRelayed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			l := newLab(t, tc.delay)
			var offNet, ansNet *vnet.Net
			if tc.ans == nil {
				nets := l.addLAN(tc.off, 2)
				offNet, ansNet = nets[0], nets[1]
			} else {
				offNet = l.addLAN(tc.off, 1)[0]
				ansNet = l.addLAN(tc.ans, 1)[0]
			}
			l.start()

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p := connect(t, ctx,
				Config{ICEServers: l.ice, Net: offNet, Logger: testLogger(t, "offerer")},
				Config{ICEServers: l.ice, Net: ansNet, Logger: testLogger(t, "answerer")})
			path := p.off.Path()
			t.Logf("path %v; setup %v (connect after answer %v)", path, p.setup.Round(time.Millisecond), p.connect.Round(time.Millisecond))
			if path.Kind != tc.kind {
				t.Errorf("offerer path %v, want %s", path, tc.kind)
			}
			if got := p.ans.Path().Kind; got != tc.kind {
				t.Errorf("answerer path kind %s, want %s", got, tc.kind)
			}
			checkEcho(t, p.off)
			rtt, err := p.off.Ping(ctx)
			if err != nil {
				t.Fatalf("Ping: %v", err)
			}
			t.Logf("ping %v", rtt)
		})
	}
}

// TestDoneWhenPathDies cuts the vnet under an open session: with short
// ICE timeouts both sides see Done, with ErrFailed.
func TestDoneWhenPathDies(t *testing.T) {
	checkLeaks(t)
	l := newLab(t, 0)
	offNet := l.addLAN(portRestricted, 1)[0]
	ansNet := l.addLAN(portRestricted, 1)[0]
	l.start()
	fast := func(name string, n *vnet.Net) Config {
		return Config{ICEServers: l.ice, Net: n, Logger: testLogger(t, name),
			DisconnectedTimeout: 300 * time.Millisecond, FailedTimeout: 500 * time.Millisecond,
			KeepaliveInterval: 100 * time.Millisecond}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := connect(t, ctx, fast("offerer", offNet), fast("answerer", ansNet))

	var cut atomicBool
	l.wan.AddChunkFilter(func(vnet.Chunk) bool { return !cut.Load() })
	cut.Store(true)
	for _, s := range []*Session{p.off, p.ans} {
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Done not closed 10 s after the path died")
		}
		if err := s.Err(); !isFailed(err) {
			t.Errorf("Err() = %v, want ErrFailed", err)
		}
	}
}

// TestGatherTimeout points ICE at a STUN/TURN server that never answers:
// Offer and Answer return after GatherTimeout with the host candidates
// they have, and hosts on one LAN still connect. A cancelled ctx ends
// gathering at once.
func TestGatherTimeout(t *testing.T) {
	checkLeaks(t)
	l := newLab(t, 0)
	nets := l.addLAN(portRestricted, 2)
	l.start()
	dead := []webrtc.ICEServer{
		{URLs: []string{"stun:203.0.113.99:3478"}},
		{URLs: []string{"turn:203.0.113.99:3478"}, Username: "1:x", Credential: "x"},
	}
	const timeout = 300 * time.Millisecond
	cfg := func(name string, n *vnet.Net) Config {
		return Config{ICEServers: dead, Net: n, GatherTimeout: timeout, Logger: testLogger(t, name)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := connect(t, ctx, cfg("offerer", nets[0]), cfg("answerer", nets[1]))
	t.Logf("setup %v with two gather timeouts of %v", p.setup.Round(time.Millisecond), timeout)
	if p.setup < 2*timeout || p.setup > 2*timeout+3*time.Second {
		t.Errorf("setup took %v, want a little over 2 × %v", p.setup, timeout)
	}
	if kind := p.off.Path().Kind; kind != PathDirect {
		t.Errorf("path %v, want direct", p.off.Path())
	}

	cancelled, stop := context.WithCancel(ctx)
	stop()
	if _, _, err := Offer(cancelled, cfg("offerer-2", nets[0])); !errors.Is(err, context.Canceled) {
		t.Errorf("Offer with a cancelled ctx: %v, want context.Canceled", err)
	}
}
