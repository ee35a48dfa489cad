package mesh

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/readymesh/readymesh/peer/wire"
)

// offer builds an offer for p's agent from grant g signed by key.
func (p *pair) offer(t *testing.T, mutate func(*wire.Grant), signer *testBroker) (*wire.Offer, wire.Grant) {
	t.Helper()
	g := wire.Grant{Technician: p.tech.ID.String(), Machine: p.agent.ID.String(), Mode: wire.ModeReadOnly, TechnicianName: "alice"}
	ttl := time.Minute
	if mutate != nil {
		mutate(&g)
		if g.Expires.Equal(time.Unix(1, 0)) {
			ttl = -time.Second
		}
	}
	sg, g, err := IssueGrant(signer.key.Priv, g, time.Now(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	params := wire.PeerParams{Ufrag: "u1", Pwd: "p1"}
	sig, err := SignParams(p.tech.Priv, params)
	if err != nil {
		t.Fatal(err)
	}
	return &wire.Offer{Grant: sg, Transport: wire.TransportQUIC, Params: params, ParamsSig: sig}, g
}

func TestOfferRefusals(t *testing.T) {
	p := newPair(t, nil)
	ctx := ctxT(t, 10*time.Second)
	stranger := newTestBroker(t)
	cases := []struct {
		name string
		make func() *wire.Offer
		want error
	}{
		{"signed by an untrusted key", func() *wire.Offer { o, _ := p.offer(t, nil, stranger); return o }, ErrGrantIssuer},
		{"body changed after signing", func() *wire.Offer {
			o, _ := p.offer(t, nil, p.b)
			o.Grant.Body = bytes.Replace(o.Grant.Body, []byte(`"read-only"`), []byte(`"elevated"`), 1)
			return o
		}, ErrGrantForged},
		{"expired", func() *wire.Offer {
			o, _ := p.offer(t, func(g *wire.Grant) { g.Expires = time.Unix(1, 0) }, p.b)
			return o
		}, ErrGrantExpired},
		{"for another machine", func() *wire.Offer {
			o, _ := p.offer(t, func(g *wire.Grant) { g.Machine = p.tech.ID.String() }, p.b)
			return o
		}, ErrGrantMachine},
		{"parameters not signed by the granted technician", func() *wire.Offer {
			o, _ := p.offer(t, nil, p.b)
			o.ParamsSig, _ = SignParams(newKey(t).Priv, o.Params)
			return o
		}, ErrGrantForged},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := p.l.Offer(ctx, p.b.key.ID, "b", c.make(), p.b.stun)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("carried by a broker that did not issue it", func(t *testing.T) {
		o, _ := p.offer(t, nil, p.b)
		if _, err := p.l.Offer(ctx, stranger.key.ID, "b", o, p.b.stun); !errors.Is(err, ErrGrantIssuer) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("replayed offer", func(t *testing.T) {
		o, _ := p.offer(t, nil, p.b)
		if _, err := p.l.Offer(ctx, p.b.key.ID, "b", o, p.b.stun); err != nil {
			t.Fatal(err)
		}
		if _, err := p.l.Offer(ctx, p.b.key.ID, "b", o, p.b.stun); !errors.Is(err, ErrGrantUsed) {
			t.Fatalf("err = %v", err)
		}
	})
	if len(p.l.Sessions()) != 0 {
		t.Fatal("a refused offer left a session")
	}
}

// rawDial connects to the agent's session socket with key k, claiming
// session, without going through Dial's checks.
func rawDial(t *testing.T, p *pair, k interface{ Cert() tls.Certificate }, session string) (*quic.Conn, error) {
	t.Helper()
	ctx := ctxT(t, 5*time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", p.l.Port())
	conn, err := quic.DialAddr(ctx, addr, clientTLS(k.Cert(), session, p.agent.ID), quicConfig())
	if err != nil {
		return nil, err
	}
	if _, err := claim(ctx, conn, session); err != nil {
		conn.CloseWithError(0, "")
		return nil, err
	}
	return conn, nil
}

type certKey struct{ c tls.Certificate }

func (c certKey) Cert() tls.Certificate { return c.c }

func keyCert(t *testing.T, p *pair, which string) certKey {
	k := p.tech
	if which == "other" {
		k = newKey(t)
	}
	c, err := certificate(k.Priv)
	if err != nil {
		t.Fatal(err)
	}
	return certKey{c}
}

func TestConnectionRefusals(t *testing.T) {
	p := newPair(t, nil)
	ctx := ctxT(t, 10*time.Second)
	o, g := p.offer(t, nil, p.b)
	if _, err := p.l.Offer(ctx, p.b.key.ID, "b", o, p.b.stun); err != nil {
		t.Fatal(err)
	}
	t.Run("another technician presenting the grant", func(t *testing.T) {
		if c, err := rawDial(t, p, keyCert(t, p, "other"), g.Session); err == nil {
			c.CloseWithError(0, "")
			t.Fatal("agent accepted a technician the grant does not name")
		}
	})
	t.Run("a third peer on the session port", func(t *testing.T) {
		if c, err := rawDial(t, p, keyCert(t, p, "other"), NewSessionID()); err == nil {
			c.CloseWithError(0, "")
			t.Fatal("agent accepted a connection for no session")
		}
	})
	t.Run("the granted technician, once", func(t *testing.T) {
		c, err := rawDial(t, p, keyCert(t, p, "tech"), g.Session)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseWithError(0, "")
		waitFor(t, func() bool { return len(p.l.Sessions()) == 1 }, "session listed")
		_, err = rawDial(t, p, keyCert(t, p, "tech"), g.Session)
		if err == nil || !strings.Contains(err.Error(), "already used") {
			t.Fatal("agent accepted a grant twice")
		}
		t.Logf("second use refused: %v", err)
	})
	t.Run("used grant offered again", func(t *testing.T) {
		if _, err := p.l.Offer(ctx, p.b.key.ID, "b", o, p.b.stun); !errors.Is(err, ErrGrantUsed) {
			t.Fatalf("err = %v, want ErrGrantUsed", err)
		}
	})
}

func TestExpiredBeforeConnect(t *testing.T) {
	p := newPair(t, nil)
	p.b.grantTTL = 300 * time.Millisecond
	cfg := p.dialConfig(wire.ModeReadOnly, wire.TransportQUIC, false)
	sig := cfg.Signal
	cfg.Signal = func(ctx context.Context, pp wire.PeerParams, s []byte, tok string) (*wire.SessionResult, error) {
		r, err := sig(ctx, pp, s, tok)
		time.Sleep(500 * time.Millisecond) // the technician dawdles past the expiry
		return r, err
	}
	cfg.PunchTimeout = time.Second
	if s, err := Dial(ctxT(t, 10*time.Second), cfg); err == nil {
		s.Close()
		t.Fatal("agent accepted an expired grant")
	} else {
		t.Logf("refused: %v", err)
	}
}

func TestMalformedSignalling(t *testing.T) {
	good := wire.PeerParams{Ufrag: "u", Pwd: "p", Candidates: []wire.Candidate{{Kind: wire.CandHost, Addr: "10.0.0.1:4000"}}}
	many := good
	for range wire.MaxCandidates + 1 {
		many.Candidates = append(many.Candidates, wire.Candidate{Kind: wire.CandHost, Addr: "10.0.0.1:4000"})
	}
	cases := map[string]wire.Offer{
		"no grant":            {Params: good},
		"too many candidates": {Grant: wire.SignedGrant{Body: []byte("{}"), Sig: []byte("x")}, Params: many},
		"bad address": {Grant: wire.SignedGrant{Body: []byte("{}"), Sig: []byte("x")},
			Params: wire.PeerParams{Candidates: []wire.Candidate{{Kind: wire.CandHost, Addr: "nowhere"}}}},
		"oversized sdp": {Grant: wire.SignedGrant{Body: []byte("{}"), Sig: []byte("x")},
			Params: wire.PeerParams{SDP: strings.Repeat("a", wire.MaxSDP+1)}},
	}
	for name, o := range cases {
		body, _ := json.Marshal(o)
		var got wire.Offer
		if err := wire.Decode(body, &got); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0xff, 0xff, 1}), make([]byte, 16)); err == nil {
		t.Error("a relay frame longer than the buffer was accepted")
	}
	if err := WriteFrame(&bytes.Buffer{}, make([]byte, MaxRelayFrame+1)); err == nil {
		t.Error("an oversized relay frame was written")
	}
}

// anyTicket is a client session cache that offers whatever ticket it last
// got for any server name: what an attacker holding an old ticket does.
type anyTicket struct {
	mu sync.Mutex // mu guards cs
	cs *tls.ClientSessionState
}

func (c *anyTicket) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs, c.cs != nil
}

func (c *anyTicket) Put(_ string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs != nil {
		c.cs = cs
	}
}

// TestNoResumptionAcrossGrants: a technician who held a session earlier
// tries to resume TLS into another technician's pending session. The
// agent issues no tickets and checks the authenticated key at the claim.
func TestNoResumptionAcrossGrants(t *testing.T) {
	p := newPair(t, nil)
	ctx := ctxT(t, 10*time.Second)
	alice := keyCert(t, p, "tech")
	cache := &anyTicket{}
	dial := func(session string) (*quic.Conn, error) {
		conf := clientTLS(alice.Cert(), session, p.agent.ID)
		conf.ClientSessionCache = cache
		conn, err := quic.DialAddr(ctx, fmt.Sprintf("127.0.0.1:%d", p.l.Port()), conf, quicConfig())
		if err != nil {
			return nil, err
		}
		if _, err := claim(ctx, conn, session); err != nil {
			conn.CloseWithError(0, "")
			return nil, err
		}
		return conn, nil
	}
	o, g := p.offer(t, nil, p.b)
	if _, err := p.l.Offer(ctx, p.b.key.ID, "b", o, p.b.stun); err != nil {
		t.Fatal(err)
	}
	first, err := dial(g.Session)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a ticket, if any, arrives after the handshake
	first.CloseWithError(0, "")
	// Bob's session, elevated.
	bob := newKey(t)
	o2, g2 := p.offer(t, func(g *wire.Grant) { g.Technician = bob.ID.String(); g.Mode = wire.ModeElevated }, p.b)
	o2.ParamsSig, _ = SignParams(bob.Priv, o2.Params)
	if _, err := p.l.Offer(ctx, p.b.key.ID, "b", o2, p.b.stun); err != nil {
		t.Fatal(err)
	}
	if c, err := dial(g2.Session); err == nil {
		c.CloseWithError(0, "")
		t.Fatal("a technician took another's pending session")
	} else {
		t.Logf("refused: %v (ticket held: %v)", err, cache.cs != nil)
	}
}

// TestProbingEndsWithOffers offers sessions nobody claims, to a candidate
// that never answers, and checks that when they lapse every prober and
// probe transaction is gone (run with -race: close races the sender).
func TestProbingEndsWithOffers(t *testing.T) {
	p := newPair(t, nil)
	p.l.cfg.PunchTimeout = 150 * time.Millisecond
	ctx := ctxT(t, 10*time.Second)
	for range 20 {
		o, _ := p.offer(t, func(g *wire.Grant) {}, p.b)
		o.Params.Candidates = []wire.Candidate{{Kind: wire.CandHost, Addr: "127.0.0.1:9"}}
		o.ParamsSig, _ = SignParams(p.tech.Priv, o.Params)
		if _, err := p.l.Offer(ctx, p.b.key.ID, "b", o, p.b.stun); err != nil {
			t.Fatal(err)
		}
	}
	// Grants last a minute; end the offers as the listener's context would.
	p.l.mu.Lock()
	for _, ps := range p.l.pending {
		ps.cancel()
	}
	p.l.mu.Unlock()
	waitFor(t, func() bool {
		p.l.sock.mu.Lock()
		defer p.l.sock.mu.Unlock()
		return len(p.l.sock.pending) == 0 && len(p.l.sock.probes) == 0
	}, "probers and their transactions gone")
}

// TestTechnicianChecksTheAnswer: a broker that rewrites the agent's answer
// (another SDP fingerprint, other candidates) or signs the grant with a
// key that is not the broker's asked is refused by the technician.
func TestTechnicianChecksTheAnswer(t *testing.T) {
	p := newPair(t, nil)
	for name, edit := range map[string]func(*wire.SessionResult){
		"answer changed":  func(r *wire.SessionResult) { r.Answer.Ufrag = "evil" },
		"answer unsigned": func(r *wire.SessionResult) { r.AnswerSig = nil },
	} {
		cfg := p.dialConfig(wire.ModeReadOnly, wire.TransportQUIC, false)
		sig := cfg.Signal
		cfg.Signal = func(ctx context.Context, pp wire.PeerParams, s []byte, tok string) (*wire.SessionResult, error) {
			r, err := sig(ctx, pp, s, tok)
			if r != nil {
				edit(r)
			}
			return r, err
		}
		if s, err := Dial(ctxT(t, 5*time.Second), cfg); err == nil || !strings.Contains(err.Error(), "not the machine's") {
			if s != nil {
				s.Close()
			}
			t.Errorf("%s: err = %v", name, err)
		}
	}
	cfg := p.dialConfig(wire.ModeReadOnly, wire.TransportQUIC, false)
	cfg.Broker = newKey(t).ID // the broker asked is another than the issuer
	if s, err := Dial(ctxT(t, 5*time.Second), cfg); !errors.Is(err, ErrGrantIssuer) {
		if s != nil {
			s.Close()
		}
		t.Errorf("grant from another broker: err = %v", err)
	}
	cfg.Broker = p.b.key.ID
	s, err := Dial(ctxT(t, 5*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
