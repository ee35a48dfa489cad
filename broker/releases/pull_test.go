package releases

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// Pulls through real hosts on loopback QUIC: a puller room, on a store
// of its own, serves agents blobs it pulls from other brokers, which
// are real rooms on stores holding the blobs, or brokers that answer
// nothing or trickle (handlers written here, for the failures a real
// room does not make on cue). The release records the puller checks
// downloads against are the publishing broker's store: what replication
// would have copied (blobs are not replicated).

// testDeadline bounds every wait of these tests: far above what a
// correct room needs, never a measure of it.
const testDeadline = time.Minute

// fleet is who the rooms know: the cluster's brokers, the brokers the
// puller asks, in order, and the enrolled machines.
type fleet struct {
	mu       sync.Mutex
	members  map[string]bool
	brokers  []peer.AddrInfo
	machines map[peer.ID]bool
}

func newFleet() *fleet {
	return &fleet{members: map[string]bool{}, machines: map[peer.ID]bool{}}
}

func (f *fleet) IsMember(id string) bool { f.mu.Lock(); defer f.mu.Unlock(); return f.members[id] }

func (f *fleet) Brokers() []peer.AddrInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]peer.AddrInfo(nil), f.brokers...)
}

func (f *fleet) Machine(id peer.ID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.machines[id] {
		return nil
	}
	return errStranger
}

func (*fleet) Technician(peer.ID) (wire.Technician, error) { return wire.Technician{}, errStranger }

// member makes h a broker of the cluster; asked, one the puller asks.
func (f *fleet) member(h host.Host, asked bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[h.ID().String()] = true
	if asked {
		f.brokers = append(f.brokers, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	}
}

func (f *fleet) enrol(h host.Host) { f.mu.Lock(); f.machines[h.ID()] = true; f.mu.Unlock() }

func newHost(t *testing.T) host.Host {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "host.key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// logs records a room's log messages.
type logs struct {
	mu   sync.Mutex
	msgs []string
	wake chan struct{} // closed and replaced at every message
}

func newLogs(t *testing.T) *logs {
	l := &logs{wake: make(chan struct{})}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, m := range l.msgs {
				t.Log("room:", m)
			}
		}
	})
	return l
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }

func (l *logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	l.mu.Lock()
	l.msgs = append(l.msgs, b.String())
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// has reports whether a message contains s.
func (l *logs) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// await waits until a message contains s.
func (l *logs) await(ctx context.Context, s string) error {
	for {
		l.mu.Lock()
		wake := l.wake
		l.mu.Unlock()
		if l.has(s) {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("no log message %q: %w", s, ctx.Err())
		}
	}
}

// blob is a release binary's bytes and name.
type blob struct {
	data []byte
	sha  string
}

func (b blob) size() int64 { return int64(len(b.data)) }

func newBlob(n int) blob {
	data := make([]byte, n)
	rand.Read(data)
	sum := sha256.Sum256(data)
	return blob{data: data, sha: hex.EncodeToString(sum[:])}
}

// origin is a broker of the cluster that holds releases whole.
type origin struct {
	room    *Room
	st      *store.Store
	host    host.Host
	streams atomic.Int64 // opened to it
}

// newOrigin is a broker holding each blob whole, each published as its
// own release. With a host, it serves them; until gate (if not nil) is
// closed, its streams wait.
func newOrigin(t *testing.T, f *fleet, serveIt bool, gate <-chan struct{}, blobs ...blob) *origin {
	t.Helper()
	o := &origin{st: fleettest.Open(t)}
	deps := Deps{Blobs: o.st, Records: o.st, Cluster: f, Keys: f, Audit: &notes{}, Replication: &notes{}}
	if serveIt {
		o.host = newHost(t)
		deps.Host = o.host
		f.member(o.host, true)
	}
	o.room = New(Config{Metrics: prometheus.NewRegistry()}, deps)
	t.Cleanup(o.room.Close)
	key, pub := newKey(t)
	if _, werr := o.room.Trust(admin, &wire.ReleaseKeyArgs{PublicKey: pub.String()}); werr != nil {
		t.Fatal(werr)
	}
	for i, b := range blobs {
		storeBlob(t, o.st, b.data, time.Now())
		d := signed(t, key, fmt.Sprintf("1.0.%d", i), b.data)
		if _, werr := o.room.Publish(admin, &wire.PublishArgs{Manifest: d.ManifestBytes, Signature: d.Signature}); werr != nil {
			t.Fatal(werr)
		}
	}
	if serveIt {
		h := serve.Handle(serve.New(nil, nil), o.room.Spec(), o.room.Serve)
		o.host.SetStreamHandler(wire.ProtoRelease, func(s network.Stream) {
			o.streams.Add(1)
			if gate != nil {
				select {
				case <-gate:
				case <-time.After(testDeadline):
				}
			}
			h(s)
		})
	}
	return o
}

// servedBrokers waits until o has served want bytes to other brokers
// (its count follows its writes), and returns what it served.
func (o *origin) servedBrokers(ctx context.Context, t *testing.T, want float64) float64 {
	t.Helper()
	for {
		var m dto.Metric
		if err := o.room.metrics.bytes.WithLabelValues(flowToBroker).(prometheus.Metric).Write(&m); err != nil {
			t.Fatal(err)
		}
		if v := m.GetCounter().GetValue(); v >= want || ctx.Err() != nil {
			return v
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// puller is the broker the agents ask.
type puller struct {
	room *Room
	st   *store.Store
	host host.Host
	logs *logs
}

func newPuller(t *testing.T, f *fleet, records *store.Store, cfg Config) *puller {
	t.Helper()
	p := &puller{st: fleettest.Open(t), host: newHost(t), logs: newLogs(t)}
	f.member(p.host, false)
	cfg.Logger = slog.New(p.logs)
	p.room = New(cfg, Deps{Blobs: p.st, Records: records, Cluster: f, Keys: f, Host: p.host,
		Audit: &notes{}, Replication: &notes{}})
	t.Cleanup(p.room.Close)
	p.host.SetStreamHandler(wire.ProtoRelease, serve.Handle(serve.New(nil, nil), p.room.Spec(), p.room.Serve))
	return p
}

// agent is an enrolled machine's host, connected to the puller.
func (p *puller) agent(t *testing.T, f *fleet) host.Host {
	t.Helper()
	h := newHost(t)
	f.enrol(h)
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: p.host.ID(), Addrs: p.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// fetch downloads b whole from broker to through h. replied, if not nil,
// is closed once the broker's reply is read.
func fetch(ctx context.Context, h host.Host, to peer.ID, b blob, replied chan<- struct{}) ([]byte, error) {
	s, err := h.NewStream(ctx, to, wire.ProtoRelease)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	defer context.AfterFunc(ctx, func() { s.Reset() })()
	req := wire.BlobRequest{Versions: wire.OurVersions(), Op: wire.BlobGet, SHA256: b.sha, Size: b.size()}
	if err := wire.Write(s, &req); err != nil {
		return nil, err
	}
	s.CloseWrite()
	rd := wire.NewReader(s)
	var rep wire.BlobReply
	if err := rd.Read(wire.MaxControl, &rep); err != nil {
		return nil, fmt.Errorf("reply: %w", err)
	}
	if rep.Error != nil {
		return nil, rep.Error
	}
	if replied != nil {
		close(replied)
	}
	return io.ReadAll(io.MultiReader(bytes.NewReader(rd.Buffered()), s))
}

// checkWhole fails t unless got is b, by its SHA-256.
func checkWhole(t *testing.T, who string, got []byte, b blob) {
	t.Helper()
	sum := sha256.Sum256(got)
	if hex.EncodeToString(sum[:]) != b.sha {
		t.Errorf("%s: %d bytes with another SHA-256, want blob %s of %d bytes", who, len(got), b.sha[:12], b.size())
	}
}

// trickle is a broker of the cluster, written here, that says it holds
// a blob whole and sends it slowly: step bytes every every, up to stall
// bytes of the blob, then the rest once go is closed.
type trickle struct {
	b           blob
	step        int
	every       time.Duration
	stall       int64
	resume      chan struct{}
	gets        chan int64    // the offset of each get
	cut         chan struct{} // closed when a get's stream failed
	once        sync.Once
	host        host.Host
	testContext context.Context
}

func newTrickle(t *testing.T, f *fleet, b blob, step int, every time.Duration, stall int64) *trickle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := &trickle{b: b, step: step, every: every, stall: stall, resume: make(chan struct{}),
		gets: make(chan int64, 16), cut: make(chan struct{}), host: newHost(t), testContext: ctx}
	t.Cleanup(cancel) // before the host closes: handlers end
	tr.host.SetStreamHandler(wire.ProtoRelease, tr.handle)
	f.member(tr.host, true)
	return tr
}

func (tr *trickle) handle(s network.Stream) {
	defer s.Close()
	var req wire.BlobRequest
	if err := wire.NewReader(s).Read(wire.MaxControl, &req); err != nil {
		s.Reset()
		return
	}
	if err := wire.Write(s, &wire.BlobReply{Have: tr.b.size(), Versions: wire.OurVersions()}); err != nil || req.Op != wire.BlobGet {
		return
	}
	tr.gets <- req.Offset
	off := req.Offset
	for off < tr.b.size() {
		end := min(off+int64(tr.step), tr.b.size())
		if off >= tr.stall {
			select {
			case <-tr.resume:
				end = tr.b.size()
			case <-tr.testContext.Done():
				s.Reset()
				return
			}
		} else {
			end = min(end, tr.stall)
			select {
			case <-time.After(tr.every):
			case <-tr.testContext.Done():
				s.Reset()
				return
			}
		}
		if _, err := s.Write(tr.b.data[off:end]); err != nil {
			tr.once.Do(func() { close(tr.cut) })
			return
		}
		off = end
	}
}

// silent is a broker of the cluster, written here, that reads a
// question and never answers it. asked is closed at its first question.
func newSilent(t *testing.T, f *fleet) (asked <-chan struct{}) {
	t.Helper()
	h := newHost(t)
	ch := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h.SetStreamHandler(wire.ProtoRelease, func(s network.Stream) {
		defer s.Reset()
		var req wire.BlobRequest
		if wire.NewReader(s).Read(wire.MaxControl, &req) == nil {
			once.Do(func() { close(ch) })
		}
		<-ctx.Done()
	})
	f.member(h, true)
	return ch
}

// deadBroker is a broker of the cluster whose host is gone.
func deadBroker(t *testing.T, f *fleet) {
	t.Helper()
	h := newHost(t)
	f.member(h, true)
	h.Close()
}

// TestPullDoesNotWaitForSilentBrokers: brokers that never answer (one
// gone, one silent) do not hold the pull back: it starts with the broker
// that answers it holds the blob whole while they are still asked, and
// ends their questions when it ends. The questions' timeout is an hour,
// so a pull that waited for them would not end within the test.
func TestPullDoesNotWaitForSilentBrokers(t *testing.T) {
	f := newFleet()
	deadBroker(t, f)
	asked := newSilent(t, f)
	b := newBlob(2*store.BlobChunk + 4321)
	// The broker that holds the blob answers only once the silent one
	// was asked: the question to it is out when the pull starts.
	o := newOrigin(t, f, true, asked, b)
	p := newPuller(t, f, o.st, Config{AskTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	got, err := fetch(ctx, p.agent(t, f), p.host.ID(), b, nil)
	if err != nil {
		t.Fatalf("download while a broker does not answer: %v", err)
	}
	checkWhole(t, "the agent", got, b)
	if m, ok := p.st.BlobHave(b.sha); !ok || !m.Whole() {
		t.Errorf("the puller holds %+v", m)
	}
	// The pull ends (its questions stopped) although the silent broker
	// never answers.
	for {
		p.room.pulls.mu.Lock()
		running := p.room.pulls.m[b.sha] != nil
		p.room.pulls.mu.Unlock()
		if !running {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the pull still waits for the broker that does not answer")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestPullLeavesSlowSource: a source slower than MinPullRate is left for
// another that holds the blob, and the pull resumes at what the store
// holds; the blob arrives whole.
func TestPullLeavesSlowSource(t *testing.T) {
	f := newFleet()
	b := newBlob(2*store.BlobChunk + 999)
	// The slow source answers first; the other answers once the slow
	// one is sending. The slow one never completes a chunk.
	slow := newTrickle(t, f, b, 1<<10, 10*time.Millisecond, store.BlobChunk+store.BlobChunk-1)
	sending := make(chan struct{})
	o := newOrigin(t, f, true, sending, b)
	p := newPuller(t, f, o.st, Config{MinPullRate: 1 << 20, PullRateWindow: 100 * time.Millisecond})
	if _, err := p.st.WriteBlobChunk(b.sha, b.size(), 0, b.data[:store.BlobChunk], time.Now()); err != nil {
		t.Fatal(err)
	}
	go func() {
		select {
		case off := <-slow.gets:
			slow.gets <- off
			close(sending)
		case <-slow.testContext.Done():
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	got, err := fetch(ctx, p.agent(t, f), p.host.ID(), b, nil)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	checkWhole(t, "the agent", got, b)
	if m, ok := p.st.BlobHave(b.sha); !ok || !m.Whole() {
		t.Errorf("the puller holds %+v", m)
	}
	select {
	case <-slow.cut:
	case <-ctx.Done():
		t.Error("the slow source was not left")
	}
	if off := <-slow.gets; off != store.BlobChunk {
		t.Errorf("the slow source was asked from %d, want what the store held (%d)", off, store.BlobChunk)
	}
	if n := o.servedBrokers(ctx, t, float64(b.size()-store.BlobChunk)); n != float64(b.size()-store.BlobChunk) {
		t.Errorf("the other source served %v bytes, want the rest after the stored chunk (%d)", n, b.size()-store.BlobChunk)
	}
	if !p.logs.has("leaving a slow broker") {
		t.Error("leaving the slow source was not logged")
	}
}

// TestPullKeepsSlowSourceAlone: a source slower than MinPullRate is kept
// when no other holds the blob, and that is logged.
func TestPullKeepsSlowSourceAlone(t *testing.T) {
	f := newFleet()
	b := newBlob(64 << 10)
	// It sends all but the last 4 KiB slowly, then the rest once the
	// puller has logged that it keeps it.
	slow := newTrickle(t, f, b, 1<<10, 10*time.Millisecond, b.size()-4<<10)
	o := newOrigin(t, f, false, nil, b)
	p := newPuller(t, f, o.st, Config{MinPullRate: 1 << 20, PullRateWindow: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	go func() {
		if p.logs.await(ctx, "slower than the floor") == nil {
			close(slow.resume)
		}
	}()
	got, err := fetch(ctx, p.agent(t, f), p.host.ID(), b, nil)
	if err != nil {
		t.Fatalf("download from the one slow source: %v", err)
	}
	checkWhole(t, "the agent", got, b)
	select {
	case <-slow.cut:
		t.Error("the only source was cut off")
	default:
	}
	if len(slow.gets) != 1 {
		t.Errorf("the source was asked %d times for the blob, want once", len(slow.gets))
	}
}

// TestNoSourceRemembered: a pull that found no source answers the next
// gets for failedFor without asking again, then asks again.
func TestNoSourceRemembered(t *testing.T) {
	f := newFleet()
	b := newBlob(1000)
	o := newOrigin(t, f, false, nil, b)
	empty := newOrigin(t, f, true, nil) // holds nothing
	clk := &clock{t: t0}
	p := newPuller(t, f, o.st, Config{Now: clk.Now})
	agent := p.agent(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	for i, step := range []struct {
		advance time.Duration
		want    int
	}{{0, 1}, {failedFor / 2, 1}, {failedFor, 2}} {
		clk.Advance(step.advance)
		_, err := fetch(ctx, agent, p.host.ID(), b, nil)
		var werr *wire.Error
		if !errors.As(err, &werr) || werr.Code != wire.CodeUnavailable || !strings.Contains(werr.Message, errNoSource.Error()) {
			t.Errorf("get %d: %v, want unavailable: %v", i, err, errNoSource)
		}
		if n := empty.streams.Load(); n != int64(step.want) {
			t.Errorf("after get %d, the other broker was asked %d times, want %d", i, n, step.want)
		}
	}
}
