package reach

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// fakeStream is a presence stream as the table sees it: only its
// connection's remote address and Reset are used.
type fakeStream struct {
	network.Stream // nil; any other method panics
	conn           fakeConn
	resets         atomic.Int32
}

func (s *fakeStream) Reset() error       { s.resets.Add(1); return nil }
func (s *fakeStream) Conn() network.Conn { return s.conn }

type fakeConn struct {
	network.Conn // nil
	addr         ma.Multiaddr
}

func (c fakeConn) RemoteMultiaddr() ma.Multiaddr { return c.addr }

// newStream is a stream from a peer at addr.
func newStream(t *testing.T, addr string) *fakeStream {
	t.Helper()
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeStream{conn: fakeConn{addr: a}}
}

const quicAddr = "/ip4/192.0.2.7/udp/4001/quic-v1"

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func newTable() *table { return &table{rows: map[string]*row{}} }

func TestTableOpenBeatClose(t *testing.T) {
	tb := newTable()
	s := newStream(t, quicAddr)
	gen := tb.open("m1", s, t0, nil)
	if !tb.online("m1") || tb.count() != 1 || tb.online("m2") {
		t.Fatalf("after open: online %v, count %d", tb.online("m1"), tb.count())
	}
	if since, ok := tb.since("m1"); !ok || !since.Equal(t0) {
		t.Errorf("since = %v, %v", since, ok)
	}
	if last, ok := tb.lastBeat("m1", gen); !ok || !last.Equal(t0) {
		t.Errorf("lastBeat right after open = %v, %v; want the opening time", last, ok)
	}
	tb.beat("m1", gen, t0.Add(5*time.Second), nil)
	if last, _ := tb.lastBeat("m1", gen); !last.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("lastBeat after a beat = %v", last)
	}
	if seen := tb.lastBeats(); len(seen) != 1 || !seen["m1"].Equal(t0.Add(5*time.Second)) {
		t.Errorf("lastBeats = %v", seen)
	}
	if _, ok := tb.close("m1", gen); !ok {
		t.Error("closing the current stream reported false")
	}
	if tb.online("m1") || tb.count() != 0 {
		t.Error("still online after its stream closed")
	}
	if _, ok := tb.close("m1", gen); ok {
		t.Error("closing it twice reported true")
	}
	if _, ok := tb.lastBeat("m1", gen); ok {
		t.Error("lastBeat of a closed stream reported current")
	}
	if s.resets.Load() != 0 {
		t.Error("the table reset a stream nothing replaced")
	}
}

// TestTableReplaced: a machine that reconnects replaces its stream. The
// old stream is reset; its beats, last beat and close no longer count.
func TestTableReplaced(t *testing.T) {
	tb := newTable()
	old, cur := newStream(t, quicAddr), newStream(t, "/ip4/192.0.2.7/tcp/4001")
	g1 := tb.open("m1", old, t0, nil)
	g2 := tb.open("m1", cur, t0.Add(time.Minute), nil)
	if g2 <= g1 {
		t.Fatalf("generations %d then %d", g1, g2)
	}
	if old.resets.Load() != 1 || cur.resets.Load() != 0 {
		t.Errorf("resets: old %d, new %d; want 1, 0", old.resets.Load(), cur.resets.Load())
	}
	tb.beat("m1", g1, t0.Add(2*time.Minute), nil) // the old stream's last words
	if _, ok := tb.lastBeat("m1", g1); ok {
		t.Error("the replaced stream's lastBeat reported current")
	}
	if last, ok := tb.lastBeat("m1", g2); !ok || !last.Equal(t0.Add(time.Minute)) {
		t.Errorf("current lastBeat = %v, %v; the old stream's beat must not move it", last, ok)
	}
	if _, ok := tb.close("m1", g1); ok {
		t.Error("closing the replaced stream reported true")
	}
	if !tb.online("m1") {
		t.Fatal("the old stream's close removed the new one")
	}
	if since, _ := tb.since("m1"); !since.Equal(t0.Add(time.Minute)) {
		t.Errorf("since = %v, want the new stream's opening", since)
	}
	if r, _ := tb.reach("m1", "eu-1"); r.Transport != "tcp" {
		t.Errorf("transport %q, want the new stream's (tcp)", r.Transport)
	}
	if _, ok := tb.close("m1", g2); !ok || tb.online("m1") {
		t.Error("the current stream's close did not remove it")
	}
}

// TestTableGenerations: generations are per table, not per machine, so a
// stream of one machine never matches another's.
func TestTableGenerations(t *testing.T) {
	tb := newTable()
	g1 := tb.open("m1", newStream(t, quicAddr), t0, nil)
	g2 := tb.open("m2", newStream(t, quicAddr), t0, nil)
	if g1 == g2 {
		t.Fatalf("two machines share generation %d", g1)
	}
	if _, ok := tb.close("m1", g2); ok || !tb.online("m1") {
		t.Error("m2's generation closed m1")
	}
}

func TestTableReach(t *testing.T) {
	tb := newTable()
	if _, ok := tb.reach("m1", "eu-1"); ok {
		t.Error("reach of an unknown machine")
	}
	gen := tb.open("m1", newStream(t, quicAddr), t0, nil)
	tb.beat("m1", gen, t0.Add(time.Second), nil)
	r, ok := tb.reach("m1", "eu-1")
	if !ok || !r.Online || r.Broker != "eu-1" || r.Transport != "quic" || !r.Since.Equal(t0) || !r.LastSeen.Equal(t0.Add(time.Second)) {
		t.Errorf("reach = %+v, %v", r, ok)
	}
}

func TestTransportName(t *testing.T) {
	tests := map[string]string{
		"/ip4/192.0.2.7/udp/4001/quic-v1":  "quic",
		"/ip6/::1/udp/4001/quic-v1":        "quic",
		"/ip4/192.0.2.7/tcp/4001":          "tcp",
		"/ip4/192.0.2.7/tcp/4001/ws":       "websocket",
		"/dns4/example.com/tcp/443/wss":    "websocket",
		"/ip4/192.0.2.7/udp/4001/webrtc-x": "/ip4/192.0.2.7/udp/4001/webrtc-x",
	}
	for addr, want := range tests {
		if got := transportName(addr); got != want {
			t.Errorf("transportName(%s) = %q, want %q", addr, got, want)
		}
	}
}
