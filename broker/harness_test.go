package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/pion/transport/v5"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// This file is the harness the broker tests share: a real broker on
// loopback sockets with its real store, and real libp2p clients. Nothing is
// mocked; the only test hooks used are the ones Config offers (Logger, Now).

// callTimeout bounds every request a test client makes.
const callTimeout = 10 * time.Second

// testLog is a slog.Handler that writes through t.Log, prefixed with the
// node's name, and remembers every record so tests can assert what was
// logged. After the test ends (stop) it drops records: a broker goroutine
// that outlives Run must not call t.Log on a finished test.
type testLog struct {
	t      testing.TB
	prefix string
	attrs  []slog.Attr

	shared *testLogState
}

type testLogState struct {
	mu      sync.Mutex
	stopped bool
	lines   []string
}

func newTestLog(t testing.TB, prefix string) *testLog {
	return &testLog{t: t, prefix: prefix, shared: &testLogState{}}
}

func (h *testLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *testLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", h.prefix, r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	line := b.String()
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	if h.shared.stopped {
		return nil
	}
	h.shared.lines = append(h.shared.lines, line)
	h.t.Log(line)
	return nil
}

func (h *testLog) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clone(h.attrs), as...)
	return &c
}

func (h *testLog) WithGroup(string) slog.Handler { return h }

func (h *testLog) stop() {
	h.shared.mu.Lock()
	h.shared.stopped = true
	h.shared.mu.Unlock()
}

// has reports whether some logged line contains every one of parts.
func (h *testLog) has(parts ...string) bool {
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	for _, l := range h.shared.lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// testClock is a Config.Now that tests can move forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// testBroker is a running broker and what the harness learned about it.
type testBroker struct {
	*Broker
	t    testing.TB
	cfg  Config
	info wire.BrokerInfo
	cred string // path of admin.credential
	log  *testLog

	mu     sync.Mutex
	hashes []string // secret hashes of the tokens made through the harness
}

// startBroker starts a broker with TestConfig in a fresh directory, waits
// until it is ready, and registers its shutdown: cancel, then wait for Run
// to return.
func startBroker(t testing.TB, opts ...func(*Config)) *testBroker {
	t.Helper()
	cfg := TestConfig(t.TempDir())
	lg := newTestLog(t, "broker:")
	cfg.Logger = slog.New(lg)
	for _, o := range opts {
		o(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type ready struct {
		info wire.BrokerInfo
		cred string
	}
	readyc := make(chan ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- b.Run(ctx, func(info wire.BrokerInfo, cred string) { readyc <- ready{info, cred} })
	}()
	tb := &testBroker{Broker: b, t: t, cfg: cfg, log: lg}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("broker Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("broker Run did not return within 10s of cancel")
		}
		lg.stop()
	})
	select {
	case r := <-readyc:
		tb.info, tb.cred = r.info, r.cred
	case err := <-done:
		t.Fatalf("broker Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("broker not ready within 10s")
	}
	return tb
}

// rememberToken records a token's hash so storeState compares its record.
func (tb *testBroker) rememberToken(secret string) {
	tb.mu.Lock()
	tb.hashes = append(tb.hashes, wire.HashSecret(secret))
	tb.mu.Unlock()
}

// testClient is a libp2p host with its own key, connected to the broker.
type testClient struct {
	t      testing.TB
	tb     *testBroker
	h      host.Host
	key    *identity.Key
	broker peer.ID
}

func (c *testClient) ID() string { return c.key.ID.String() }

// newClient makes a key and a dial-only bridge host and connects it.
func (tb *testBroker) newClient(t testing.TB) *testClient { return tb.newClientOn(t, nil) }

// newClientOn is newClient on network n (nil: the host's).
func (tb *testBroker) newClientOn(t testing.TB, n transport.Net) *testClient {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key, Net: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ai, err := bridge.AddrInfo(tb.info)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := h.Connect(ctx, ai); err != nil {
		t.Fatalf("connect to broker: %v", err)
	}
	return &testClient{t: t, tb: tb, h: h, key: key, broker: ai.ID}
}

// call makes one request/reply exchange, as bridge.Call does. A transport
// failure fails the test; refusals come back in the reply's Error field.
func (c *testClient) call(proto protocol.ID, req, reply any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s, err := c.h.NewStream(ctx, c.broker, proto)
	if err != nil {
		c.t.Fatalf("open %s: %v", proto, err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(callTimeout))
	if err := wire.Write(s, req); err != nil {
		c.t.Fatalf("call %s: %v", proto, err)
	}
	// Unlike bridge.Call, a failed CloseWrite is not fatal: the broker may
	// have answered and closed its side already, which makes QUIC refuse
	// the half-close while the reply is waiting to be read. See
	// TestCallReplyBeforeCloseWrite in peer/bridge; TestBridgeCallRace
	// below exercises bridge.Call itself.
	s.CloseWrite()
	if err := wire.NewReader(s).Read(wire.MaxReply, reply); err != nil {
		c.t.Fatalf("call %s: read reply: %v", proto, err)
	}
}

// raw opens a stream, writes data as is, half-closes it when closeWrite is
// set, and reads one framed reply into reply. It returns how long the reply
// took.
func (c *testClient) raw(proto protocol.ID, data []byte, closeWrite bool, reply any) time.Duration {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s, err := c.h.NewStream(ctx, c.broker, proto)
	if err != nil {
		c.t.Fatalf("open %s: %v", proto, err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	// A broker that refuses a request before reading it all (one over its
	// limit) answers and stops reading, so the write may fail while the
	// refusal is already on its way back: read it either way.
	_, werr := s.Write(data)
	if closeWrite && werr == nil {
		// May fail when the broker has already answered; see call.
		s.CloseWrite()
	}
	if err := wire.NewReader(s).Read(wire.MaxReply, reply); err != nil {
		c.t.Fatalf("read %s reply: %v (the write: %v)", proto, err, werr)
	}
	return time.Since(start)
}

// tech runs one technician operation and returns the raw result or the
// refusal.
func (c *testClient) tech(op string, args any) (json.RawMessage, *wire.Error) {
	c.t.Helper()
	req := wire.Request{Op: op}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			c.t.Fatal(err)
		}
		req.Args = raw
	}
	var reply wire.Reply
	c.call(wire.ProtoTech, &req, &reply)
	return reply.Result, reply.Error
}

// mustTech runs an operation that must succeed and decodes its result.
func (c *testClient) mustTech(op string, args, result any) {
	c.t.Helper()
	raw, werr := c.tech(op, args)
	if werr != nil {
		c.t.Fatalf("%s: %v", op, werr)
	}
	if result != nil {
		if err := json.Unmarshal(raw, result); err != nil {
			c.t.Fatalf("%s result: %v", op, err)
		}
	}
}

// login presents a login token.
func (c *testClient) login(token string) wire.LoginReply {
	c.t.Helper()
	var reply wire.LoginReply
	c.call(wire.ProtoLogin, &wire.Login{Token: token}, &reply)
	return reply
}

// admin returns a client logged in with the broker's admin credential.
func (tb *testBroker) admin(t testing.TB) *testClient { return tb.adminOn(t, nil) }

// adminOn is admin on network n (nil: the host's).
func (tb *testBroker) adminOn(t testing.TB, n transport.Net) *testClient {
	t.Helper()
	raw, err := os.ReadFile(tb.cred)
	if err != nil {
		t.Fatal(err)
	}
	c := tb.newClientOn(t, n)
	if r := c.login(strings.TrimSpace(string(raw))); r.Error != nil || !r.Technician.Admin {
		t.Fatalf("admin login: %+v", r)
	}
	return c
}

// createClient creates an MSP client (a machine group).
func (tb *testBroker) createClient(admin *testClient, name string) {
	admin.t.Helper()
	admin.mustTech(wire.OpClientsCreate, wire.ClientArgs{Name: name}, nil)
}

// token creates an enrolment token for client.
func (tb *testBroker) token(admin *testClient, client string, uses int, ttl time.Duration) wire.Token {
	admin.t.Helper()
	var res wire.TokenResult
	admin.mustTech(wire.OpTokensCreate, wire.TokenArgs{Client: client, Uses: uses, TTLSec: int64(ttl / time.Second)}, &res)
	tok, err := wire.ParseToken(wire.KindEnroll, res.Token)
	if err != nil {
		admin.t.Fatalf("token from tokens.create: %v", err)
	}
	tb.rememberToken(tok.Secret)
	return tok
}

// enrollAs sends an Enroll from c and returns the reply.
func (c *testClient) enroll(tok wire.Token, name string) wire.EnrollReply {
	c.t.Helper()
	var reply wire.EnrollReply
	c.call(wire.ProtoEnroll, &wire.Enroll{Secret: tok.Secret, BrokerID: tok.Broker.PeerID, Name: name,
		Hostname: name + ".example", AgentVersion: "0.1.0"}, &reply)
	return reply
}

// agent returns a new client enrolled as name with tok.
func (tb *testBroker) agent(t testing.TB, tok wire.Token, name string) *testClient {
	t.Helper()
	c := tb.newClient(t)
	if r := c.enroll(tok, name); r.Error != nil || r.MachineID != c.ID() {
		t.Fatalf("enroll %s: %+v", name, r)
	}
	return c
}

// fleet is the usual starting point: an admin, one client "acme", and an
// enrolment token for it with a few uses.
func (tb *testBroker) fleet(t testing.TB) (admin *testClient, tok wire.Token) {
	t.Helper()
	admin = tb.admin(t)
	tb.createClient(admin, "acme")
	return admin, tb.token(admin, "acme", 5, time.Hour)
}

// testSnapshot returns a valid snapshot.
func testSnapshot(hostname string) wire.Snapshot {
	approved := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	return wire.Snapshot{
		CollectedAt:  time.Now().UTC().Truncate(time.Millisecond),
		Hostname:     hostname,
		BootID:       "5b0c7f0e-0d4f-4a40-9f6a-2d7c8f4a1b11",
		OS:           wire.OS{Family: "linux", ID: "debian", Name: "Debian GNU/Linux 12", Version: "12", Kernel: "6.1.0", Arch: "amd64"},
		AgentVersion: "0.1.0",
		Packages:     []wire.Package{{Name: "openssl", Version: "3.0.11"}, {Name: "bash", Version: "5.2"}},
		PendingUpdates: []wire.PendingUpdate{
			{ID: "openssl", Version: "3.0.13", Source: "apt", Security: true},
		},
		Runtime:   wire.RuntimeConfig{CheckInIntervalSec: 3600, HeartbeatSec: 5, ConsentPolicy: wire.ConsentWindow},
		Approval:  wire.Approval{Required: true, LastApprovedAt: &approved, ApprovedBy: "alice"},
		Addresses: []string{"192.0.2.10/24"},
	}
}

// checkIn sends a check-in through bridge.Call.
func (c *testClient) checkIn(seq uint64, snap wire.Snapshot) wire.CheckInAck {
	c.t.Helper()
	var ack wire.CheckInAck
	c.call(wire.ProtoCheckIn, &wire.CheckIn{MachineID: c.ID(), Seq: seq, Reason: wire.ReasonInterval, Snapshot: snap}, &ack)
	return ack
}

// frame encodes v with its length prefix, as wire.Write does.
func frame(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := wire.Write(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// storeState is everything in the store a refused request could have
// touched.
type storeState struct {
	Machines    []store.Machine
	Snapshots   map[string]*wire.Snapshot
	History     map[string][]wire.HistoryItem
	Tokens      map[string]store.Token
	Technicians []wire.Technician
	Clients     []wire.Client
	AdminHash   string
}

func (tb *testBroker) state(t testing.TB) storeState {
	t.Helper()
	st := tb.Store()
	s := storeState{Machines: st.Machines(), Snapshots: map[string]*wire.Snapshot{},
		History: map[string][]wire.HistoryItem{}, Tokens: map[string]store.Token{}, AdminHash: st.AdminHash()}
	slices.SortFunc(s.Machines, func(a, b store.Machine) int { return strings.Compare(a.ID, b.ID) })
	for _, m := range s.Machines {
		snap, err := st.Snapshot(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		hist, err := st.History(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		s.Snapshots[m.ID], s.History[m.ID] = snap, hist
	}
	tb.mu.Lock()
	hashes := slices.Clone(tb.hashes)
	tb.mu.Unlock()
	for _, h := range hashes {
		tok, err := st.Token(h)
		if err != nil {
			t.Fatalf("token %s: %v", h, err)
		}
		s.Tokens[h] = tok
	}
	var err error
	if s.Technicians, err = st.Technicians(); err != nil {
		t.Fatal(err)
	}
	if s.Clients, err = st.Clients(); err != nil {
		t.Fatal(err)
	}
	return s
}

// sameState fails the test if the store changed.
func sameState(t testing.TB, before, after storeState) {
	t.Helper()
	if reflect.DeepEqual(before, after) {
		return
	}
	b, _ := json.MarshalIndent(before, "", " ")
	a, _ := json.MarshalIndent(after, "", " ")
	t.Errorf("a refused request changed the store:\nbefore: %s\nafter:  %s", b, a)
}

// wantCode fails the test unless e carries code.
func wantCode(t testing.TB, e *wire.Error, code string) {
	t.Helper()
	switch {
	case e == nil:
		t.Errorf("got no error, want %s", code)
	case e.Code != code:
		t.Errorf("got error %q (%s), want code %s", e.Message, e.Code, code)
	case e.Message == "":
		t.Errorf("error %s has no message", code)
	}
}

// card returns the machine card for id as c sees it in OpMachines.
func (c *testClient) card(id string) (wire.Card, bool) {
	c.t.Helper()
	var cards []wire.Card
	c.mustTech(wire.OpMachines, wire.MachinesArgs{}, &cards)
	for _, card := range cards {
		if card.ID == id {
			return card, true
		}
	}
	return wire.Card{}, false
}

// waitFor polls cond every 10 ms until it holds or timeout passes, and
// returns how long it took.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// presenceStream is an open presence stream from an agent.
type presenceStream struct {
	s network.Stream
	r *wire.Reader
}

// openPresence opens a presence stream and sends hello; it returns the
// broker's hello reply.
func (c *testClient) openPresence(hello wire.Hello) (*presenceStream, wire.HelloReply) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s, err := c.h.NewStream(ctx, c.broker, wire.ProtoPresence)
	if err != nil {
		c.t.Fatalf("open presence: %v", err)
	}
	c.t.Cleanup(func() { s.Reset() })
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wire.Write(s, &hello); err != nil {
		c.t.Fatalf("hello: %v", err)
	}
	ps := &presenceStream{s: s, r: wire.NewReader(s)}
	var reply wire.HelloReply
	if err := ps.r.Read(wire.MaxReply, &reply); err != nil {
		c.t.Fatalf("hello reply: %v", err)
	}
	return ps, reply
}

// beat sends one heartbeat and reads its ack.
func (p *presenceStream) beat(t testing.TB, hb wire.Heartbeat) wire.HeartbeatAck {
	t.Helper()
	p.s.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wire.Write(p.s, &hb); err != nil {
		t.Fatalf("heartbeat %d: %v", hb.Seq, err)
	}
	var ack wire.HeartbeatAck
	if err := p.r.Read(wire.MaxReply, &ack); err != nil {
		t.Fatalf("heartbeat %d ack: %v", hb.Seq, err)
	}
	return ack
}
