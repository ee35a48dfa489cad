package mesh

import (
	"context"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/transport/v5"

	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// testBroker plays the broker's part in-process: it signs grants, carries
// offers to the listener and splices relay streams with in-memory pipes.
// The data path under test (sockets, probes, QUIC, pumps) is real.
type testBroker struct {
	t    testing.TB
	key  *identity.Key
	name string

	// mu guards relays.
	mu     sync.Mutex
	relays map[string]net.Conn // session → the second side's end, waiting

	// relayed counts bytes that crossed the relay; relayedMu guards it.
	relayedMu sync.Mutex
	relayed   int64

	grantTTL time.Duration
	delay    time.Duration // one-way signalling delay each leg
	stun     netip.AddrPort
	obs      *Observer
	// punchDelay holds the agent's probes back, so a relay wins first.
	punchDelay time.Duration
	lastGrant  wire.SignedGrant
}

func newKey(t testing.TB) *identity.Key {
	t.Helper()
	k, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "k.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestBroker(t testing.TB) *testBroker {
	return &testBroker{t: t, key: newKey(t), name: "test-broker", relays: map[string]net.Conn{}, grantTTL: time.Minute}
}

func (b *testBroker) trusted(p peer.ID) bool { return p == b.key.ID }

// signal returns a DialConfig.Signal that reaches l.
func (b *testBroker) signal(l *Listener, tech *identity.Key, mode, transport string, relay bool) func(context.Context, wire.PeerParams, []byte, string) (*wire.SessionResult, error) {
	return func(ctx context.Context, p wire.PeerParams, sig []byte, token string) (*wire.SessionResult, error) {
		sleep(b.delay)
		sg, g, err := IssueGrant(b.key.Priv, wire.Grant{Technician: tech.ID.String(), Machine: l.cfg.Key.ID.String(),
			Mode: mode, TechnicianName: "alice"}, time.Now(), b.grantTTL)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		b.lastGrant = sg
		b.mu.Unlock()
		o := &wire.Offer{Grant: sg, Transport: transport, Params: p, ParamsSig: sig, Relay: relay,
			PunchDelayMs: int(b.punchDelay / time.Millisecond)}
		if token != "" && b.obs != nil {
			wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			if a, ok := b.obs.Wait(wctx, token); ok {
				o.Observed = []wire.Candidate{{Kind: wire.CandSrflx, Addr: a.String()}}
			}
			cancel()
		}
		sleep(b.delay)
		ans, err := l.Offer(ctx, b.key.ID, b.name, o, b.stun)
		if err != nil {
			return nil, err
		}
		sleep(2 * b.delay)
		asig, err := SignParams(l.cfg.Key.Priv, *ans)
		if err != nil {
			return nil, err
		}
		return &wire.SessionResult{Grant: sg, Session: g.Session, Machine: g.Machine, Answer: *ans, AnswerSig: asig,
			Relay: relay, RelayName: b.name}, nil
	}
}

func sleep(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

// relay returns a Relay that pairs the two sides of a session.
func (b *testBroker) relay() Relay {
	return func(ctx context.Context, session string) (io.ReadWriteCloser, error) {
		b.mu.Lock()
		if other, ok := b.relays[session]; ok {
			delete(b.relays, session)
			b.mu.Unlock()
			return other, nil
		}
		x, y := net.Pipe()
		b.relays[session] = &countConn{Conn: y, b: b}
		b.mu.Unlock()
		return &countConn{Conn: x, b: b}, nil
	}
}

type countConn struct {
	net.Conn
	b *testBroker
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.b.relayedMu.Lock()
	c.b.relayed += int64(n)
	c.b.relayedMu.Unlock()
	return n, err
}

func (b *testBroker) relayedBytes() int64 {
	b.relayedMu.Lock()
	defer b.relayedMu.Unlock()
	return b.relayed
}

// pair is a listener (agent) and what a technician needs to dial it.
type pair struct {
	b     *testBroker
	agent *identity.Key
	l     *Listener
	tech  *identity.Key
}

func newPair(t testing.TB, n transport.Net) *pair {
	t.Helper()
	b := newTestBroker(t)
	p := &pair{b: b, agent: newKey(t), tech: newKey(t)}
	var err error
	p.l, err = Listen(ListenConfig{Key: p.agent, Trusted: b.trusted, Relay: agentSide(b.relay()), Net: n, Addr: addrFor(n)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.l.Close() })
	return p
}

func addrFor(n transport.Net) string {
	if n == nil {
		return "127.0.0.1:0"
	}
	return ""
}

func (p *pair) dialConfig(mode, transport string, relay bool) DialConfig {
	return DialConfig{Key: p.tech, Transport: transport, Signal: p.b.signal(p.l, p.tech, mode, transport, relay),
		Relay: p.b.relay(), PunchTimeout: 3 * time.Second, RelayGrace: 200 * time.Millisecond, STUN: p.b.stun}
}

func ioReadFull(r interface{ Read([]byte) (int, error) }, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func mustAddrPort(t testing.TB, s string) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// agentSide adapts a technician-side Relay to the agent's, which also
// names the broker.
func agentSide(r Relay) func(context.Context, peer.ID, string) (io.ReadWriteCloser, error) {
	return func(ctx context.Context, _ peer.ID, session string) (io.ReadWriteCloser, error) {
		return r(ctx, session)
	}
}
