package reach

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// directory is the cluster's presence as a fixed map, which a test may
// change while the layer reads it.
type directory struct {
	local string

	mu      sync.Mutex
	entries map[string]cluster.PresenceEntry // mu guards
}

func (d *directory) Presence(id string) (cluster.PresenceEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[id]
	return e, ok
}

func (d *directory) LocalName() string { return d.local }

func (d *directory) set(id string, e cluster.PresenceEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entries[id] = e
}

// work is the queue's side as a fixed answer.
type work struct{ wants map[string]bool }

func (w work) WantsCheckIn(id string) bool { return w.wants[id] }
func (w work) Kick()                       {}

var _ Directory = (*directory)(nil)
var _ Work = work{}

// checkIn stores check-in seq of id.
func checkIn(t *testing.T, st *store.Store, id string, seq uint64) {
	t.Helper()
	ci := &wire.CheckIn{MachineID: id, Seq: seq, Reason: wire.ReasonInterval, Snapshot: fleettest.Snapshot(id)}
	if _, err := st.CheckIn(ci, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// newLayer is a layer named eu-1 on st, in a cluster whose directory is
// returned.
func newLayer(st Store) (*Layer, *directory) {
	l := New(Config{Name: "eu-1"}, Deps{Store: st})
	d := &directory{local: "eu-1", entries: map[string]cluster.PresenceEntry{}}
	l.SetCluster(nil, d)
	return l, d
}

func TestReach(t *testing.T) {
	seen := t0.Add(-time.Hour)
	since := t0.Add(-time.Minute)
	tests := []struct {
		desc      string
		local     bool                   // a presence stream open here
		entry     *cluster.PresenceEntry // the directory's entry
		want      wire.Reachability      // Since and LastSeen compared apart
		since     time.Time              // zero: none
		elsewhere string                 // Elsewhere's answer
	}{
		{desc: "offline everywhere", want: wire.Reachability{}},
		{desc: "here", local: true, want: wire.Reachability{Online: true, Broker: "eu-1", Transport: "quic"}, since: t0},
		{desc: "through another broker", entry: &cluster.PresenceEntry{Online: true, Broker: "us-1", Since: since},
			want: wire.Reachability{Online: true, Broker: "us-1"}, since: since, elsewhere: "us-1"},
		{desc: "here wins over the directory", local: true, entry: &cluster.PresenceEntry{Online: true, Broker: "us-1", Since: since},
			want: wire.Reachability{Online: true, Broker: "eu-1", Transport: "quic"}, since: t0, elsewhere: "us-1"},
		{desc: "the directory names this broker", entry: &cluster.PresenceEntry{Online: true, Broker: "eu-1", Since: since},
			want: wire.Reachability{}},
		{desc: "the directory says it went offline", entry: &cluster.PresenceEntry{Broker: "us-1", Since: since},
			want: wire.Reachability{}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			l, d := newLayer(nil)
			m := store.Machine{ID: "m1", Client: "acme", Name: "web", LastSeen: &seen}
			if tc.local {
				l.table.open(m.ID, newStream(t, quicAddr), t0, nil)
			}
			if tc.entry != nil {
				d.set(m.ID, *tc.entry)
			}
			r := l.Reach(&m)
			if r.Online != tc.want.Online || r.Broker != tc.want.Broker || r.Transport != tc.want.Transport {
				t.Errorf("Reach = %+v, want %+v", r, tc.want)
			}
			switch {
			case tc.since.IsZero() && r.Since != nil:
				t.Errorf("since %v, want none", r.Since)
			case !tc.since.IsZero() && (r.Since == nil || !r.Since.Equal(tc.since)):
				t.Errorf("since %v, want %v", r.Since, tc.since)
			}
			// Offline, or online elsewhere, it shows the stored last-seen.
			if !tc.local && (r.LastSeen == nil || !r.LastSeen.Equal(seen)) {
				t.Errorf("last seen %v, want the stored %v", r.LastSeen, seen)
			}
			if broker, ok := l.Elsewhere(m.ID); broker != tc.elsewhere || ok != (tc.elsewhere != "") {
				t.Errorf("Elsewhere = %q, %v; want %q", broker, ok, tc.elsewhere)
			}
		})
	}
}

// TestReachAlone: a broker without a cluster knows only its own table.
func TestReachAlone(t *testing.T) {
	l := New(Config{Name: "eu-1"}, Deps{})
	m := store.Machine{ID: "m1"}
	if r := l.Reach(&m); r.Online || r.LastSeen != nil {
		t.Errorf("Reach = %+v", r)
	}
	if _, ok := l.Elsewhere("m1"); ok {
		t.Error("Elsewhere without a cluster")
	}
	l.table.open("m1", newStream(t, quicAddr), t0, nil)
	if r := l.Reach(&m); !r.Online || r.Broker != "eu-1" || !l.Online("m1") || l.Count() != 1 {
		t.Errorf("Reach = %+v once bridged here", r)
	}
}

func TestWaitOnline(t *testing.T) {
	st := fleettest.Open(t)
	m := fleettest.Enrol(t, st, "m1", "acme", "web", time.Now())
	seen := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	if err := st.SetLastSeen(map[string]time.Time{m.ID: seen}); err != nil {
		t.Fatal(err)
	}

	t.Run("timeout", func(t *testing.T) {
		l, _ := newLayer(st)
		start := time.Now()
		_, werr := l.WaitOnline(context.Background(), m, 10*time.Millisecond)
		if werr == nil || werr.Code != wire.CodeUnavailable || !strings.Contains(werr.Message, "acme/web did not come online") {
			t.Errorf("WaitOnline = %v, want unavailable", werr)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("a 10 ms wait took %v", d)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		l, _ := newLayer(st)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, werr := l.WaitOnline(ctx, m, time.Hour)
		if werr == nil || werr.Code != wire.CodeUnavailable || !strings.Contains(werr.Message, "technician left") {
			t.Errorf("WaitOnline = %v, want the technician left", werr)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("returned %v after the context ended", d)
		}
	})
	t.Run("already here", func(t *testing.T) {
		l, _ := newLayer(st)
		l.table.open(m.ID, newStream(t, quicAddr), t0, nil)
		got, werr := l.WaitOnline(context.Background(), m, time.Hour)
		if werr != nil {
			t.Fatal(werr)
		}
		// The machine is read again from the store.
		if got.LastSeen == nil || !got.LastSeen.Equal(seen) {
			t.Errorf("returned machine last seen %v, want the stored %v", got.LastSeen, seen)
		}
	})
	t.Run("comes online elsewhere", func(t *testing.T) {
		l, d := newLayer(st)
		go func() {
			time.Sleep(50 * time.Millisecond)
			d.set(m.ID, cluster.PresenceEntry{Online: true, Broker: "us-1", Since: time.Now()})
		}()
		start := time.Now()
		if _, werr := l.WaitOnline(context.Background(), m, 10*time.Second); werr != nil {
			t.Fatal(werr)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("noticed after %v", d)
		}
	})
}

// TestFlush stores online machines' last heartbeats as their last-seen
// times, and never moves a stored time back.
func TestFlush(t *testing.T) {
	st := fleettest.Open(t)
	fleettest.Enrol(t, st, "m1", "acme", "web", time.Now())
	fleettest.Enrol(t, st, "m2", "acme", "db", time.Now())
	l, _ := newLayer(st)
	now := time.Now().UTC().Truncate(time.Millisecond)
	gen := l.table.open("m1", newStream(t, quicAddr), now.Add(-time.Minute), nil)
	l.table.beat("m1", gen, now, nil)
	l.Flush()
	if m, _ := st.Machine("m1"); m.LastSeen == nil || !m.LastSeen.Equal(now) {
		t.Errorf("m1 last seen %v, want %v", m.LastSeen, now)
	}
	if m, _ := st.Machine("m2"); m.LastSeen != nil {
		t.Errorf("m2, never online, last seen %v", m.LastSeen)
	}
	l.table.beat("m1", gen, now.Add(-time.Hour), nil)
	l.Flush()
	if m, _ := st.Machine("m1"); !m.LastSeen.Equal(now) {
		t.Errorf("an older beat moved last seen to %v", m.LastSeen)
	}
}

// TestWantsCheckIn: a heartbeat's ack asks for a check-in when work
// waits for one, or when the agent holds an acknowledged check-in the
// store lacks.
func TestWantsCheckIn(t *testing.T) {
	st := fleettest.Open(t)
	fleettest.Enrol(t, st, "fresh", "acme", "fresh", time.Now()) // never checked in
	fleettest.Enrol(t, st, "held", "acme", "held", time.Now())
	checkIn(t, st, "held", 5)
	l, _ := newLayer(st)
	l.SetWork(work{wants: map[string]bool{"queued": true}})
	tests := []struct {
		id       string
		agentSeq uint64
		want     bool
	}{
		{"queued", 0, true},
		{"fresh", 0, false},
		{"fresh", 1, true},
		{"held", 5, false},
		{"held", 4, false},
		{"held", 6, true},
		{"unknown", 9, false},
	}
	for _, tc := range tests {
		if got := l.wantsCheckIn(tc.id, tc.agentSeq); got != tc.want {
			t.Errorf("wantsCheckIn(%s, %d) = %v, want %v", tc.id, tc.agentSeq, got, tc.want)
		}
	}
}

func TestReadEnd(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{io.EOF, endClosed},
		{wire.ErrMalformed, endBad},
		{wire.ErrTooLarge, endBad},
		{timeoutErr{}, endMissed},
		{io.ErrClosedPipe, endLost},
	}
	for _, tc := range tests {
		if got := readEnd(tc.err); got != tc.want {
			t.Errorf("readEnd(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "deadline exceeded" }
func (timeoutErr) Timeout() bool { return true }
