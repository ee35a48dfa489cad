package session

import (
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

// Sessions as an agent reports them.
var (
	waitingBob = wire.SessionInfo{Session: "s-wait", Technician: "bob", Mode: wire.ModeInteractive, State: waitingForApproval}
	aliceRO    = wire.SessionInfo{Session: "s1", Technician: "alice", Mode: wire.ModeReadOnly, Path: "relayed via eu-1", State: "active"}
	alicePause = wire.SessionInfo{Session: "s2", Technician: "alice", Mode: wire.ModeInteractive, Path: "direct-quic", InputPaused: true}
	bobShared  = wire.SessionInfo{Session: "s3", Technician: "bob", Mode: wire.ModeElevated, Path: "direct-webrtc", State: "active", Shared: true}
)

func TestCard(t *testing.T) {
	tests := []struct {
		desc     string
		sessions []wire.SessionInfo
		beat     *wire.Heartbeat
		want     *wire.Session
	}{
		{desc: "nothing reported", want: nil},
		{desc: "heartbeat alone", beat: &wire.Heartbeat{Load1: 2, UserPresent: true}, want: nil},
		{desc: "an empty report", sessions: []wire.SessionInfo{}, want: nil},
		{desc: "waiting only", sessions: []wire.SessionInfo{waitingBob},
			want: &wire.Session{State: waitingForApproval, Waiting: 1}},
		{desc: "active and waiting", sessions: []wire.SessionInfo{aliceRO, waitingBob},
			want: &wire.Session{State: "active", Sessions: 1, Waiting: 1, Technicians: []string{"alice"},
				Mode: wire.ModeReadOnly, Path: "relayed via eu-1"}},
		{desc: "technicians once, newest mode and path, paused and shared",
			sessions: []wire.SessionInfo{aliceRO, alicePause, waitingBob, bobShared},
			want: &wire.Session{State: "active", Sessions: 3, Waiting: 1, Technicians: []string{"alice", "bob"},
				Mode: wire.ModeElevated, Path: "direct-webrtc", InputPaused: true,
				Shared: []wire.SharedTerminal{{Session: "s3", Technician: "bob"}}}},
		{desc: "busy and a person present, from the beat", sessions: []wire.SessionInfo{aliceRO},
			beat: &wire.Heartbeat{Load1: 0.95, UserPresent: true},
			want: &wire.Session{State: "active", Sessions: 1, Technicians: []string{"alice"}, Mode: wire.ModeReadOnly,
				Path: "relayed via eu-1", Busy: true, UserPresent: true}},
		{desc: "idle and alone", sessions: []wire.SessionInfo{aliceRO},
			beat: &wire.Heartbeat{Load1: 0.1},
			want: &wire.Session{State: "active", Sessions: 1, Technicians: []string{"alice"}, Mode: wire.ModeReadOnly,
				Path: "relayed via eu-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			st := NewStatus(0, nil)
			if tc.sessions != nil {
				st.report("m1", tc.sessions)
			}
			if tc.beat != nil {
				st.Beat("m1", tc.beat)
			}
			if got := st.Card("m1"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Card = %+v\nwant   %+v", got, tc.want)
			}
			if got := st.Card("other"); got != nil {
				t.Errorf("another machine's card %+v", got)
			}
		})
	}
}

// TestCardLastBeat: busy and user presence follow the last heartbeat.
func TestCardLastBeat(t *testing.T) {
	st := NewStatus(0, nil)
	st.report("m1", []wire.SessionInfo{aliceRO})
	for _, hb := range []wire.Heartbeat{{Load1: 3, UserPresent: true}, {Load1: 0.5}, {Load1: 0.9, UserPresent: true}} {
		st.Beat("m1", &hb)
		c := st.Card("m1")
		if c.Busy != (hb.Load1 >= 0.9) || c.UserPresent != hb.UserPresent {
			t.Errorf("after beat %+v: busy %v, user present %v", hb, c.Busy, c.UserPresent)
		}
		load, present, ok := st.Signals("m1")
		if !ok || load != hb.Load1 || present != hb.UserPresent {
			t.Errorf("Signals = %v, %v, %v after %+v", load, present, ok, hb)
		}
	}
}

func TestBusyThreshold(t *testing.T) {
	tests := []struct {
		busyLoad, load float64
		want           bool
	}{
		{0, 0.9, true}, // zero means 0.9
		{0, 0.89, false},
		{-1, 0.95, true},
		{2, 1.5, false},
		{2, 2, true},
	}
	for _, tc := range tests {
		if got := NewStatus(tc.busyLoad, nil).Busy(tc.load); got != tc.want {
			t.Errorf("NewStatus(%v).Busy(%v) = %v, want %v", tc.busyLoad, tc.load, got, tc.want)
		}
	}
}

func TestWaiting(t *testing.T) {
	st := NewStatus(0, nil)
	st.report("m1", []wire.SessionInfo{aliceRO, waitingBob})
	tests := []struct {
		id, session string
		want        bool
	}{
		{"m1", "s-wait", true},
		{"m1", "s1", false},      // active
		{"m1", "nothing", false}, // not reported
		{"m2", "s-wait", false},  // another machine
	}
	for _, tc := range tests {
		if got := st.Waiting(tc.id, tc.session); got != tc.want {
			t.Errorf("Waiting(%s, %s) = %v, want %v", tc.id, tc.session, got, tc.want)
		}
	}
}

// TestGone: a machine whose presence stream ended has no sessions and no
// signals left.
func TestGone(t *testing.T) {
	var changes atomic.Int32
	st := NewStatus(0, func() { changes.Add(1) })
	st.report("m1", []wire.SessionInfo{aliceRO, waitingBob})
	st.Beat("m1", &wire.Heartbeat{Load1: 1, UserPresent: true})
	st.report("m2", []wire.SessionInfo{bobShared})
	before := changes.Load()
	st.Gone("m1")
	if c := st.Card("m1"); c != nil {
		t.Errorf("card after Gone: %+v", c)
	}
	if _, _, ok := st.Signals("m1"); ok {
		t.Error("signals after Gone")
	}
	if st.Waiting("m1", "s-wait") {
		t.Error("still waiting after Gone")
	}
	if st.Card("m2") == nil {
		t.Error("Gone(m1) forgot m2")
	}
	if changes.Load() != before {
		t.Error("Gone notified: the reachability change is notified by its own layer")
	}
	st.Gone("never-seen") // harmless
}

// TestBeatNotifies: a heartbeat notifies only when the person at the
// machine logs in or out; a report always does.
func TestBeatNotifies(t *testing.T) {
	var changes atomic.Int32
	st := NewStatus(0, func() { changes.Add(1) })
	steps := []struct {
		hb   wire.Heartbeat
		want int32 // changes so far
	}{
		{wire.Heartbeat{Load1: 0.1}, 0}, // first beat, nobody there: as assumed
		{wire.Heartbeat{Load1: 5}, 0},   // load alone
		{wire.Heartbeat{Load1: 5, UserPresent: true}, 1},
		{wire.Heartbeat{Load1: 0.2, UserPresent: true}, 1},
		{wire.Heartbeat{Load1: 0.2}, 2},
	}
	for i, s := range steps {
		st.Beat("m1", &s.hb)
		if got := changes.Load(); got != s.want {
			t.Errorf("step %d (%+v): %d changes, want %d", i, s.hb, got, s.want)
		}
	}
	st.report("m1", nil)
	if got := changes.Load(); got != 3 {
		t.Errorf("a report notified %d times in all, want 3", got)
	}
	// After Gone, a person present is news again.
	st.Gone("m1")
	st.Beat("m1", &wire.Heartbeat{UserPresent: true})
	if got := changes.Load(); got != 4 {
		t.Errorf("%d changes after a beat following Gone, want 4", got)
	}
}

// TestGrantMemory: the zero value works, a grant names one machine, and
// only the newest grantsKept sessions are remembered.
func TestGrantMemory(t *testing.T) {
	var g grantMemory
	if g.grantedTo("s", "m1") {
		t.Fatal("an empty memory granted")
	}
	g.add("first", "m1")
	if !g.grantedTo("first", "m1") || g.grantedTo("first", "m2") {
		t.Error("a grant to m1 must be m1's only")
	}
	for i := range grantsKept {
		g.add("s"+strconv.Itoa(i), "m2")
	}
	if g.grantedTo("first", "m1") {
		t.Error("the oldest grant was kept past the bound")
	}
	if !g.grantedTo("s0", "m2") || !g.grantedTo("s"+strconv.Itoa(grantsKept-1), "m2") {
		t.Error("a grant within the bound was forgotten")
	}
	if len(g.m) != grantsKept || len(g.order) != grantsKept {
		t.Errorf("remembers %d sessions (%d in order), want %d", len(g.m), len(g.order), grantsKept)
	}
}
