package checkin_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/checkin"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// callTimeout bounds every exchange a test makes.
const callTimeout = 10 * time.Second

// written records the keys the intake hands to replication.
type written struct {
	mu   sync.Mutex
	keys []store.Key
}

func (w *written) CopyToPeer(_ context.Context, keys ...store.Key) {}

func (w *written) Written(keys ...store.Key) {
	w.mu.Lock()
	w.keys = append(w.keys, keys...)
	w.mu.Unlock()
}

func newHost(t *testing.T, listen ...string) host.Host {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "host.key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key, Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// rig is a broker host serving check-ins into a real store, and an agent
// host enrolled in client acme, on loopback QUIC.
type rig struct {
	st          *store.Store
	broker, cli host.Host
	now         time.Time
	machine     store.Machine
	repl        *written
	snap        wire.Snapshot
}

func newRig(t *testing.T) *rig {
	t.Helper()
	st, err := store.Open(store.Config{Path: filepath.Join(t.TempDir(), "broker.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &rig{st: st, broker: newHost(t, "/ip4/127.0.0.1/udp/0/quic-v1"), cli: newHost(t), now: time.Now().UTC(), repl: &written{}}
	if _, err := st.CreateClient("acme", r.now); err != nil {
		t.Fatal(err)
	}
	hash := wire.HashSecret(wire.NewSecret())
	if err := st.CreateToken(hash, store.Token{Client: "acme", Uses: 1, UsesLeft: 1, ExpiresAt: r.now.Add(time.Hour),
		CreatedBy: "admin", CreatedAt: r.now}); err != nil {
		t.Fatal(err)
	}
	r.machine, err = st.Enroll(store.EnrollRequest{TokenHash: hash, MachineID: r.cli.ID().String(), Name: "pc-1", Now: r.now})
	if err != nil {
		t.Fatal(err)
	}
	in := checkin.New(st, r.repl, nil, time.Now, wire.MaxSnapshot, nil)
	r.broker.SetStreamHandler(wire.ProtoCheckIn, serve.Handle(serve.New(nil, nil), in.Spec(), in.Serve))
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := r.cli.Connect(ctx, peer.AddrInfo{ID: r.broker.ID(), Addrs: r.broker.Addrs()}); err != nil {
		t.Fatal(err)
	}
	r.snap = wire.Snapshot{CollectedAt: r.now.Truncate(time.Millisecond), Hostname: "pc-1", BootID: "boot-1",
		OS:           wire.OS{Family: "linux", ID: "debian", Name: "Debian GNU/Linux 12", Version: "12", Kernel: "6.1.0", Arch: "amd64"},
		AgentVersion: "0.4.0", Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600, HeartbeatSec: 5, ConsentPolicy: wire.ConsentWindow}}
	return r
}

// checkIn sends check-in seq and returns the ack.
func (r *rig) checkIn(t *testing.T, seq uint64) wire.CheckInAck {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var ack wire.CheckInAck
	ci := &wire.CheckIn{MachineID: r.cli.ID().String(), Seq: seq, Reason: wire.ReasonInterval, Snapshot: r.snap}
	if err := bridge.Call(ctx, r.cli, r.broker.ID(), wire.ProtoCheckIn, ci, &ack, wire.MaxControl); err != nil {
		t.Fatalf("check-in %d: %v", seq, err)
	}
	if ack.Error != nil {
		t.Fatalf("check-in %d refused: %v", seq, ack.Error)
	}
	return ack
}

// Every acked check-in carries the policy in force for the machine: none,
// its client's, its own, and an empty one (none is set) before and once
// both are cleared. A retried
// check-in's ack carries it too.
func TestAckCarriesPolicy(t *testing.T) {
	r := newRig(t)
	quiet := wire.AgentPolicy{OnMetered: wire.MeteredQuiet, QuietCheckInSec: 6 * 3600}
	normal := wire.AgentPolicy{OnMetered: wire.MeteredNormal}
	if ack := r.checkIn(t, 1); ack.Policy == nil || *ack.Policy != (wire.AgentPolicy{}) {
		t.Errorf("no policy set: ack carries %+v, want an empty policy", ack.Policy)
	}
	if _, err := r.st.SetPolicy(store.ClientScope("acme"), quiet, "admin", r.now); err != nil {
		t.Fatal(err)
	}
	if ack := r.checkIn(t, 2); ack.Policy == nil || *ack.Policy != quiet {
		t.Errorf("client's policy: ack carries %+v, want %+v", ack.Policy, quiet)
	}
	if ack := r.checkIn(t, 2); !ack.Duplicate || ack.Policy == nil || *ack.Policy != quiet {
		t.Errorf("retried check-in: duplicate %v, policy %+v; want %+v", ack.Duplicate, ack.Policy, quiet)
	}
	if _, err := r.st.SetPolicy(store.MachineScope(r.machine.ID), normal, "admin", r.now); err != nil {
		t.Fatal(err)
	}
	if ack := r.checkIn(t, 3); ack.Policy == nil || *ack.Policy != normal {
		t.Errorf("machine's own policy: ack carries %+v, want %+v", ack.Policy, normal)
	}
	for _, scope := range []string{store.MachineScope(r.machine.ID), store.ClientScope("acme")} {
		if _, err := r.st.ClearPolicy(scope); err != nil {
			t.Fatal(err)
		}
	}
	if ack := r.checkIn(t, 4); ack.Policy == nil || *ack.Policy != (wire.AgentPolicy{}) {
		t.Errorf("policies cleared: ack carries %+v, want an empty policy", ack.Policy)
	}
	r.repl.mu.Lock()
	defer r.repl.mu.Unlock()
	if len(r.repl.keys) != 4 {
		t.Errorf("replication was handed %d keys, want one per new check-in (4)", len(r.repl.keys))
	}
}

// A refused check-in's reply carries no policy: the broker tells its
// policy only to an agent it acknowledges.
func TestRefusalCarriesNoPolicy(t *testing.T) {
	r := newRig(t)
	if _, err := r.st.SetPolicy(store.ClientScope("acme"), wire.AgentPolicy{OnMetered: wire.MeteredQuiet}, "admin", r.now); err != nil {
		t.Fatal(err)
	}
	r.checkIn(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var ack wire.CheckInAck
	ci := &wire.CheckIn{MachineID: r.cli.ID().String(), Seq: 4, Reason: wire.ReasonInterval, Snapshot: r.snap}
	if err := bridge.Call(ctx, r.cli, r.broker.ID(), wire.ProtoCheckIn, ci, &ack, wire.MaxControl); err != nil {
		t.Fatal(err)
	}
	if ack.Error == nil || ack.Error.Code != wire.CodeConflict || ack.Policy != nil {
		t.Errorf("out-of-order check-in: error %v, policy %+v; want a conflict and no policy", ack.Error, ack.Policy)
	}
}
