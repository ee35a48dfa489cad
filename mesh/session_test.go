package mesh

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// checkSession moves bytes both ways and pings.
func checkSession(t *testing.T, s *Session) {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	if err := s.Send(ctx, 4<<20); err != nil {
		t.Fatal(err)
	}
	st, err := s.Open(ctx, ChanEcho)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello through the mesh")
	st.Write(msg)
	got := make([]byte, len(msg))
	if _, err := ioReadFull(st, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo: %q, %v", got, err)
	}
	st.Close()
	if _, err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDirectQUICOnLoopback(t *testing.T) {
	p := newPair(t, nil)
	s, err := Dial(ctxT(t, 10*time.Second), p.dialConfig(wire.ModeInteractive, wire.TransportQUIC, false))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path().Kind != wire.PathDirectQUIC || s.Mode != wire.ModeInteractive {
		t.Fatalf("path %v mode %s", s.Path(), s.Mode)
	}
	checkSession(t, s)
	waitFor(t, func() bool {
		ss := p.l.Sessions()
		return len(ss) == 1 && ss[0].Path == wire.PathDirectQUIC && ss[0].Technician == "alice"
	}, "agent lists the direct session")
	if p.b.relayedBytes() != 0 {
		t.Fatalf("%d bytes crossed the relay of a direct session", p.b.relayedBytes())
	}
	s.Close()
	waitFor(t, func() bool { return len(p.l.Sessions()) == 0 }, "agent forgets the closed session")
}

func TestRelayOnly(t *testing.T) {
	p := newPair(t, nil)
	s, err := Dial(ctxT(t, 10*time.Second), p.dialConfig(wire.ModeReadOnly, wire.TransportRelay, true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path().Kind != wire.PathRelayed || s.Path().Via != "test-broker" {
		t.Fatalf("path %v", s.Path())
	}
	before := p.b.relayedBytes()
	checkSession(t, s)
	if moved := p.b.relayedBytes() - before; moved < 4<<20 {
		t.Fatalf("only %d bytes crossed the relay for a 4 MiB send", moved)
	}
	waitFor(t, func() bool {
		ss := p.l.Sessions()
		return len(ss) == 1 && strings.HasPrefix(ss[0].Path, wire.PathRelayed)
	}, "agent reports the relayed path")
}

func TestQUICWithoutPathFails(t *testing.T) {
	p := newPair(t, nil)
	cfg := p.dialConfig(wire.ModeReadOnly, wire.TransportQUIC, false)
	sig := cfg.Signal
	cfg.Signal = func(ctx context.Context, pp wire.PeerParams, s []byte, tok string) (*wire.SessionResult, error) {
		r, err := sig(ctx, pp, s, tok)
		if r != nil {
			// An address nothing listens on: the punch cannot succeed.
			r.Answer.Candidates = []wire.Candidate{{Kind: wire.CandHost, Addr: "127.0.0.1:9"}}
			r.AnswerSig, _ = SignParams(p.agent.Priv, r.Answer)
		}
		return r, err
	}
	cfg.PunchTimeout = 500 * time.Millisecond
	_, err := Dial(ctxT(t, 10*time.Second), cfg)
	if err == nil || !strings.Contains(err.Error(), "no path") {
		t.Fatalf("err = %v, want no path", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting: %s", what)
}

func TestWebRTCOnLoopback(t *testing.T) {
	p := newPair(t, nil)
	cfg := p.dialConfig(wire.ModeReadOnly, wire.TransportWebRTC, false)
	cfg.Addr = "127.0.0.1:0"
	s, err := Dial(ctxT(t, 15*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path().Kind != wire.PathDirectWebRTC {
		t.Fatalf("path %v", s.Path())
	}
	ctx := ctxT(t, 20*time.Second)
	if err := s.Send(ctx, 4<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, ChanEcho); err == nil {
		t.Fatal("a QUIC channel opened on a WebRTC session")
	}
	waitFor(t, func() bool {
		ss := p.l.Sessions()
		return len(ss) == 1 && ss[0].Path == wire.PathDirectWebRTC
	}, "agent lists the WebRTC session")
	// The grant was used by the offer: the same grant cannot open another.
	o := &wire.Offer{Grant: p.b.lastGrant, Transport: wire.TransportWebRTC, Params: wire.PeerParams{SDP: "v=0"}}
	o.ParamsSig, _ = SignParams(p.tech.Priv, o.Params)
	if _, err := p.l.Offer(ctx, p.b.key.ID, "b", o, p.b.stun); !errors.Is(err, ErrGrantUsed) {
		t.Fatalf("replayed WebRTC grant: %v", err)
	}
	s.Close()
	waitFor(t, func() bool { return len(p.l.Sessions()) == 0 }, "agent forgets the closed session")
}

// TestPipelinedClaim: with Pipeline, Dial returns before the agent's
// verdict; channels opened at once work once the claim is accepted, and a
// refused claim ends the session with the agent's reason.
func TestPipelinedClaim(t *testing.T) {
	p := newPair(t, nil)
	cfg := p.dialConfig(wire.ModeInteractive, wire.TransportQUIC, false)
	cfg.Pipeline = true
	s, err := Dial(ctxT(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkSession(t, s)
	if err := s.Claimed(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	p.b.grantTTL = 200 * time.Millisecond
	cfg.Signal = func(ctx context.Context, pp wire.PeerParams, sg []byte, tok string) (*wire.SessionResult, error) {
		r, err := p.b.signal(p.l, p.tech, wire.ModeInteractive, wire.TransportQUIC, false)(ctx, pp, sg, tok)
		time.Sleep(300 * time.Millisecond) // past the grant's expiry
		return r, err
	}
	s, err = Dial(ctxT(t, 10*time.Second), cfg)
	if err != nil {
		t.Logf("refused before Dial returned: %v", err)
		return
	}
	defer s.Close()
	err = s.Claimed(ctxT(t, 5*time.Second))
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("claim verdict: %v, want expired", err)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a refused session stayed open")
	}
}
