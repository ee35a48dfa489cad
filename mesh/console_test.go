package mesh

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/readymesh/readymesh/mesh/rtc"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestConsoleGrant is a browser's session as the agent sees it: a grant
// that binds the browser's DTLS fingerprints instead of a technician's
// signature, and channels the browser opens in-band, served by the
// agent's channel handlers with the grant's mode.
func TestConsoleGrant(t *testing.T) {
	b := newTestBroker(t)
	agent, tech := newKey(t), newKey(t)
	modes := make(chan string, 4)
	l, err := Listen(ListenConfig{Key: agent, Trusted: b.trusted, Addr: "127.0.0.1:0",
		Channels: map[string]ChannelHandler{"terminal": func(ctx context.Context, ch *Channel) {
			modes <- ch.Grant.Mode
			io.Copy(ch.Stream, ch.Stream)
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := ctxT(t, 20*time.Second)
	browser := rtc.Config{IncludeLoopback: true, IPFilter: func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil }}

	offer := func() (*rtc.Offerer, string, []string) {
		o, sdp, err := rtc.Offer(ctx, browser)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		fps, err := rtc.Fingerprints(sdp)
		if err != nil {
			t.Fatal(err)
		}
		return o, sdp, fps
	}
	grant := func(fps []string) wire.SignedGrant {
		sg, _, err := IssueGrant(b.key.Priv, wire.Grant{Technician: tech.ID.String(), Machine: agent.ID.String(),
			Mode: wire.ModeInteractive, TechnicianName: "alice", Fingerprints: fps}, time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return sg
	}

	// Refusals first: each leaves nothing open on the agent.
	_, sdpA, fpsA := offer()
	_, sdpB, _ := offer()
	for _, c := range []struct {
		name string
		o    wire.Offer
		want error
	}{
		{"another browser's offer", wire.Offer{Grant: grant(fpsA), Transport: wire.TransportWebRTC, Params: wire.PeerParams{SDP: sdpB}}, ErrGrantPeer},
		{"a console grant over QUIC", wire.Offer{Grant: grant(fpsA), Transport: wire.TransportQUIC, Params: wire.PeerParams{SDP: sdpA}}, ErrGrantPeer},
		{"an unsigned grant without fingerprints", wire.Offer{Grant: grant(nil), Transport: wire.TransportWebRTC, Params: wire.PeerParams{SDP: sdpA}}, ErrGrantForged},
	} {
		if _, err := l.Offer(ctx, b.key.ID, b.name, &c.o, netip.AddrPort{}); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if n := len(l.Sessions()); n != 0 {
		t.Fatalf("%d sessions after refusals", n)
	}

	off, sdp, fps := offer()
	ans, err := l.Offer(ctx, b.key.ID, b.name, &wire.Offer{Grant: grant(fps), Transport: wire.TransportWebRTC,
		Params: wire.PeerParams{SDP: sdp}}, netip.AddrPort{})
	if err != nil {
		t.Fatalf("console offer: %v", err)
	}
	s, err := off.Accept(ctx, ans.SDP)
	if err != nil {
		t.Fatal(err)
	}
	// A label the agent has no handler for is closed at once.
	unknown, err := s.OpenChannel(ctx, "screen")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unknown.Read(make([]byte, 1)); err == nil {
		t.Error("read from an unknown channel succeeded")
	}
	st, err := s.OpenChannel(ctx, "terminal")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(st, got); err != nil || string(got) != "hello" {
		t.Fatalf("terminal echo %q, %v", got, err)
	}
	if m := <-modes; m != wire.ModeInteractive {
		t.Errorf("handler saw mode %q", m)
	}
	waitFor(t, func() bool { return len(l.Sessions()) == 1 }, "agent lists the console session")
	s.Close()
	waitFor(t, func() bool { return len(l.Sessions()) == 0 }, "agent forgets the closed session")
}
