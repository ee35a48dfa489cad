package reach

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// awayRig is a broker's presence layer serving a loopback host, and a
// second layer that shares its notes, as another broker of the cluster
// would through gossip.
type awayRig struct {
	server, client host.Host
	st             *store.Store
	here, there    *Layer
	m              store.Machine
}

func newAwayRig(t *testing.T, listen string, beat time.Duration) *awayRig {
	t.Helper()
	rig := &awayRig{server: loopbackHost(t, listen), client: loopbackHost(t, listen), st: fleettest.Open(t)}
	rig.m = fleettest.Enrol(t, rig.st, rig.client.ID().String(), "acme", "pc-1", time.Now())
	notes := &localNotes{}
	src := &clusterList{}
	src.set([]wire.BrokerInfo{brokerInfo("eu-1", 1)})
	rig.here = New(Config{Name: "eu-1", Heartbeat: beat, MissedHeartbeats: 2}, Deps{Store: rig.st, Signals: nosignals{}, Brokers: src})
	rig.here.SetWork(work{})
	rig.here.SetNotes(notes)
	// The other broker sees the machine offline (nothing in its
	// directory) and reads the same notes.
	rig.there = New(Config{Name: "eu-2"}, Deps{Store: rig.st})
	rig.there.SetCluster(nil, &directory{local: "eu-2", entries: map[string]cluster.PresenceEntry{}})
	rig.there.SetNotes(notes)
	rig.server.SetStreamHandler(wire.ProtoPresence, serve.Handle(serve.New(nil, nil), Spec, rig.here.ServePresence))
	return rig
}

// open opens a presence stream with hello and reads the reply.
func (rig *awayRig) open(t *testing.T, hello wire.Hello) (network.Stream, *wire.Reader) {
	t.Helper()
	s, r, _ := rig.openReply(t, hello)
	return s, r
}

// openReply is open that returns the hello reply too.
func (rig *awayRig) openReply(t *testing.T, hello wire.Hello) (network.Stream, *wire.Reader, wire.HelloReply) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rig.client.Connect(ctx, peer.AddrInfo{ID: rig.server.ID(), Addrs: rig.server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := rig.client.NewStream(ctx, rig.server.ID(), wire.ProtoPresence)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	s.SetDeadline(time.Now().Add(10 * time.Second))
	hello.MachineID = rig.client.ID().String()
	r := wire.NewReader(s)
	if err := wire.Write(s, &hello); err != nil {
		t.Fatal(err)
	}
	var reply wire.HelloReply
	if err := r.Read(wire.MaxControl, &reply); err != nil || reply.Error != nil {
		t.Fatalf("hello reply %+v, %v", reply, err)
	}
	return s, r, reply
}

// beat sends a heartbeat and reads its ack.
func beatOnce(t *testing.T, s network.Stream, r *wire.Reader, hb wire.Heartbeat) {
	t.Helper()
	if err := wire.Write(s, &hb); err != nil {
		t.Fatal(err)
	}
	var ack wire.HeartbeatAck
	if err := r.Read(wire.MaxControl, &ack); err != nil || ack.Seq != hb.Seq {
		t.Fatalf("ack %+v, %v; want seq %d", ack, err, hb.Seq)
	}
}

// waitOffline waits until l shows the rig's machine offline with a
// reason, and returns its reachability.
func (rig *awayRig) waitOffline(t *testing.T, l *Layer) wire.Reachability {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := l.Reach(&rig.m)
		if !r.Online && r.OfflineReason != "" {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %+v after 10 s", r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAwayReasons: the reason a machine is away shows on this broker and
// on another that shares the notes: the agent's own notice, a clean close
// without one, and silence.
func TestAwayReasons(t *testing.T) {
	back := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	tests := []struct {
		desc    string
		leaving *wire.Leaving
		end     string // close, silence
		reason  string
		detail  string
		back    *time.Time
	}{
		{desc: "asleep with its notice", leaving: &wire.Leaving{Reason: wire.AwayAsleep, Detail: "lid closed"}, end: "close",
			reason: wire.AwayAsleep, detail: "lid closed"},
		{desc: "quiet, back at the next check-in", leaving: &wire.Leaving{Reason: wire.AwayQuiet, Detail: "metered connection", ExpectedBack: &back},
			end: "close", reason: wire.AwayQuiet, detail: "metered connection", back: &back},
		{desc: "shutdown, then silence", leaving: &wire.Leaving{Reason: wire.AwayShutdown, Detail: "reboot"}, end: "silence",
			reason: wire.AwayShutdown, detail: "reboot"},
		{desc: "a clean close without a notice", end: "close", reason: wire.AwayStopped, detail: "without a notice"},
		{desc: "silence", end: "silence", reason: wire.AwayLost, detail: "heartbeats stopped"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			rig := newAwayRig(t, "/ip4/127.0.0.1/udp/0/quic-v1", 100*time.Millisecond)
			s, r := rig.open(t, wire.Hello{})
			beatOnce(t, s, r, wire.Heartbeat{Seq: 1})
			lastBeat := time.Now()
			if tc.leaving != nil {
				beatOnce(t, s, r, wire.Heartbeat{Seq: 2, Leaving: tc.leaving})
				lastBeat = time.Now()
			}
			if tc.end == "close" {
				s.CloseWrite()
			}
			for _, l := range []*Layer{rig.here, rig.there} {
				got := rig.waitOffline(t, l)
				if got.OfflineReason != tc.reason || !strings.Contains(got.Detail, tc.detail) {
					t.Errorf("%s: reason %q detail %q, want %q containing %q", l.cfg.Name, got.OfflineReason, got.Detail, tc.reason, tc.detail)
				}
				if got.OfflineSince == nil || got.OfflineSince.After(time.Now()) || got.OfflineSince.Before(lastBeat.Add(-time.Second)) {
					t.Errorf("%s: offline since %v, want about %v", l.cfg.Name, got.OfflineSince, lastBeat)
				}
				if (tc.back == nil) != (got.ExpectedBack == nil) || tc.back != nil && !tc.back.Equal(*got.ExpectedBack) {
					t.Errorf("%s: expected back %v, want %v", l.cfg.Name, got.ExpectedBack, tc.back)
				}
			}
		})
	}
}

// TestReturnedShown: what the agent says of its time away, and UDP
// blocked on a bridge that fell back to TCP, show while it is online,
// here and through the note on another broker.
func TestReturnedShown(t *testing.T) {
	rig := newAwayRig(t, "/ip4/127.0.0.1/tcp/0", time.Minute)
	woke := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	blocked := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	s, r := rig.open(t, wire.Hello{Returned: &wire.Returned{What: wire.ReturnedResumed, At: woke}, UDPBlockedSince: &blocked})
	beatOnce(t, s, r, wire.Heartbeat{Seq: 1})
	got := rig.here.Reach(&rig.m)
	if !got.Online || got.Transport != "tcp" || got.UDPBlockedSince == nil || !got.UDPBlockedSince.Equal(blocked) ||
		got.Returned == nil || got.Returned.What != wire.ReturnedResumed {
		t.Fatalf("here: %+v", got)
	}
	for _, want := range []string{"resumed from sleep at " + woke.Format(time.RFC3339), "UDP blocked since " + blocked.Format(time.RFC3339), "fell back to tcp"} {
		if !strings.Contains(got.Detail, want) {
			t.Errorf("detail %q lacks %q", got.Detail, want)
		}
	}
	if got.OfflineReason != "" || got.OfflineSince != nil {
		t.Errorf("an online machine with an away reason: %+v", got)
	}
	// Another broker that sees the machine online through eu-1 shows the
	// same, from the arrival note.
	since := *got.Since
	d := &directory{local: "eu-2", entries: map[string]cluster.PresenceEntry{}}
	d.set(rig.m.ID, cluster.PresenceEntry{Online: true, Broker: "eu-1", Since: since.Truncate(time.Millisecond)})
	rig.there.SetCluster(nil, d)
	there := rig.there.Reach(&rig.m)
	if !there.Online || there.UDPBlockedSince == nil || there.Returned == nil || !strings.Contains(there.Detail, "UDP blocked") {
		t.Errorf("there: %+v", there)
	}
}

// TestNoLostNoteWhenMoved: a broker that notices late that a bridge broke
// writes no "lost" note when the machine is online on another broker
// since after that bridge opened.
func TestNoLostNoteWhenMoved(t *testing.T) {
	l, d := newLayer(nil)
	notes := &localNotes{}
	l.SetNotes(notes)
	d.set("m1", cluster.PresenceEntry{Online: true, Broker: "us-1", Since: t0.Add(time.Minute)})
	l.departed("m1", row{since: t0, lastBeat: t0}, endMissed, t0.Add(2*time.Minute))
	if _, _, ok := notes.Note("m1"); ok {
		t.Error("a lost note for a machine online elsewhere")
	}
	d.set("m1", cluster.PresenceEntry{Online: true, Broker: "us-1", Since: t0.Add(-time.Minute)})
	l.departed("m1", row{since: t0, lastBeat: t0}, endMissed, t0.Add(2*time.Minute))
	if n, ok := l.note("m1"); !ok || n.Reason != wire.AwayLost {
		t.Errorf("note %+v, %v; want lost: the other broker's bridge is older", n, ok)
	}
}

// TestNoteFits: an encoded note stays within the cluster's limit however
// long the agent's details are.
func TestNoteFits(t *testing.T) {
	long := strings.Repeat("\u2028", wire.MaxAwayDetail/3) // escaped to 6 bytes each in JSON
	n := awayNote{Reason: wire.AwayAsleep, Since: t0, Detail: long, Back: &t0,
		Returned: &wire.Returned{What: wire.ReturnedUnclean, At: t0, Detail: long}, UDPBlocked: &t0}
	b := n.encode()
	if len(b) > maxNote {
		t.Fatalf("%d bytes, over %d", len(b), maxNote)
	}
	got, ok := decodeNote(b)
	if !ok || got.Reason != wire.AwayAsleep || got.Returned == nil {
		t.Errorf("decoded %+v, %v", got, ok)
	}
	if short := (awayNote{Reason: wire.AwayLost, Since: t0, Detail: "x"}).encode(); !strings.Contains(string(short), `"detail":"x"`) {
		t.Errorf("a short note lost its detail: %s", short)
	}
}

// TestPolicyInAcks: the fleet's policy for a machine goes in the hello
// reply, and again on the first ack after it changes (an empty object
// once it is cleared), so a connected agent follows it within a
// heartbeat.
func TestPolicyInAcks(t *testing.T) {
	rig := newAwayRig(t, "/ip4/127.0.0.1/udp/0/quic-v1", time.Minute)
	var mu sync.Mutex
	policy := wire.AgentPolicy{OnMetered: wire.MeteredNormal}
	rig.here.deps.Policy = func(*store.Machine) wire.AgentPolicy {
		mu.Lock()
		defer mu.Unlock()
		return policy
	}
	set := func(p wire.AgentPolicy) {
		mu.Lock()
		policy = p
		mu.Unlock()
	}
	s, r, reply := rig.openReply(t, wire.Hello{})
	if reply.Policy == nil || *reply.Policy != (wire.AgentPolicy{OnMetered: wire.MeteredNormal}) {
		t.Fatalf("hello reply policy %+v", reply.Policy)
	}
	ack := func(seq uint64) *wire.AgentPolicy {
		t.Helper()
		if err := wire.Write(s, &wire.Heartbeat{Seq: seq}); err != nil {
			t.Fatal(err)
		}
		var a wire.HeartbeatAck
		if err := r.Read(wire.MaxControl, &a); err != nil {
			t.Fatal(err)
		}
		return a.Policy
	}
	if p := ack(1); p != nil {
		t.Errorf("an unchanged policy sent again: %+v", p)
	}
	quiet := wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 3600}
	set(quiet)
	if p := ack(2); p == nil || *p != quiet {
		t.Errorf("after a change the ack carries %+v, want %+v", p, quiet)
	}
	if p := ack(3); p != nil {
		t.Errorf("the change sent twice: %+v", p)
	}
	set(wire.AgentPolicy{})
	if p := ack(4); p == nil || *p != (wire.AgentPolicy{}) {
		t.Errorf("after a clear the ack carries %+v, want an empty policy", p)
	}
}

// TestNoteFollowsAhead: a note this broker writes replaces the newest it
// knows even when that one was stamped ahead of this broker's clock
// (another broker's clock runs fast).
func TestNoteFollowsAhead(t *testing.T) {
	l, _ := newLayer(nil)
	notes := &localNotes{}
	l.SetNotes(notes)
	l.cfg.Now = func() time.Time { return t0 }
	notes.SetNote("m1", t0.Add(2*time.Minute), awayNote{Reason: wire.AwayLost, Since: t0}.encode())
	l.setNote("m1", awayNote{Reason: wire.AwayAsleep, Since: t0})
	at, _, _ := notes.Note("m1")
	if n, ok := l.note("m1"); !ok || n.Reason != wire.AwayAsleep || !at.After(t0.Add(2*time.Minute)) {
		t.Errorf("note %+v at %v, want asleep just after the note stamped ahead", n, at)
	}
}

// TestLeavingWithdrawn: a heartbeat without a notice after one with it
// withdraws it: the agent stayed, and a later silence is lost.
func TestLeavingWithdrawn(t *testing.T) {
	tb := newTable()
	gen := tb.open("m1", newStream(t, quicAddr), t0, nil)
	tb.beat("m1", gen, t0.Add(time.Second), &wire.Leaving{Reason: wire.AwayAsleep})
	tb.beat("m1", gen, t0.Add(2*time.Second), nil)
	if r, ok := tb.close("m1", gen); !ok || r.leaving != nil {
		t.Errorf("row %+v, want no notice left", r.leaving)
	}
}
