package mesh

import (
	"errors"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestRevokeEndsSessionsAndRefusesOldGrants: revoking a technician ends
// its live session at once, and a grant it was issued before the
// revocation is refused; another technician's session is untouched.
func TestRevokeEndsSessionsAndRefusesOldGrants(t *testing.T) {
	p := newPair(t, nil)
	ctx := ctxT(t, 20*time.Second)
	s, err := Dial(ctx, p.dialConfig(wire.ModeReadOnly, wire.TransportQUIC, false))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other := &pair{b: p.b, agent: p.agent, l: p.l, tech: newKey(t)}
	s2, err := Dial(ctx, other.dialConfig(wire.ModeReadOnly, wire.TransportQUIC, false))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	waitFor(t, func() bool { return len(p.l.Sessions()) == 2 }, "agent lists both sessions")
	// An offer whose grant was issued now, before the revocation.
	old, _ := p.offer(t, nil, p.b)

	if n := p.l.Revoke(p.tech.ID, "technician alice was disabled by admin"); n != 1 {
		t.Errorf("Revoke ended %d sessions, want 1", n)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked technician's session is still open 5 s after the revocation")
	}
	waitFor(t, func() bool { return len(p.l.Sessions()) == 1 }, "agent lists only the other technician's session")
	if _, err := s2.Ping(ctx); err != nil {
		t.Errorf("the other technician's session broke: %v", err)
	}
	if _, err := p.l.Offer(ctx, p.b.key.ID, "b", old, p.b.stun); !errors.Is(err, ErrGrantRevoked) {
		t.Errorf("offer with a grant issued before the revocation: %v, want ErrGrantRevoked", err)
	}
	// A grant issued well after the revocation (the technician enabled
	// again) is accepted.
	fresh, _ := p.offer(t, func(g *wire.Grant) {}, p.b)
	p.l.mu.Lock()
	p.l.revoked[p.tech.ID] = time.Now().Add(-time.Hour + time.Minute)
	p.l.mu.Unlock()
	if _, err := p.l.Offer(ctx, p.b.key.ID, "b", fresh, p.b.stun); err != nil {
		t.Errorf("offer with a grant issued after the revocation: %v", err)
	}
}
