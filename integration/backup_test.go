package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond"
)

// TestBackupDuringCheckInBurst backs up a broker with `broker backup`
// while 50 agents check in as fast as the broker acknowledges, restores
// the backup into a new directory with `broker restore`, and starts a
// broker on it in place of the first: every check-in acknowledged before
// the backup began is there, the restored broker is the same broker (peer
// ID), and an agent enrolled with the first comes online on it by itself.
//
// The 50 agents run in this process at the protocol level, as in
// integration/density: each is its own libp2p host with the key `sessiond
// enroll` made, sending real check-ins over its own bridge and counting
// the acknowledgements, which is what a sessiond does but without 50
// processes on a two-core machine. The agent that comes online afterwards
// is a real sessiond process.
func TestBackupDuringCheckInBurst(t *testing.T) {
	needBinaries(t)
	const (
		agents   = 50
		perAgent = 60  // check-ins each; below the history limit of 100
		backupAt = 400 // acknowledgements before the backup starts
	)
	base := testDir(t)
	origin := startBroker(t, base, "origin", time.Second)
	admin := origin.admin(base)
	admin.ok("clients", "create", "acme")
	tok := admin.token("acme", agents+1, time.Hour).Token
	live := enroll(t, base, tok, "frontdesk-01", "linux-ready.json")
	live.start()
	waitOnline(t, admin, 20*time.Second, live)
	fleet := dialFleet(t, origin, enrollInProcess(t, base, tok, agents))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	burstDone := make(chan struct{})
	go func() {
		fleet.burst(ctx, perAgent)
		close(burstDone)
	}()
	poll(t, time.Minute, fmt.Sprintf("%d check-ins acknowledged", backupAt), func() (bool, string) {
		n := fleet.total()
		return n >= backupAt, fmt.Sprintf("%d acknowledged", n)
	})
	before, atStart := fleet.snapshot()
	file := filepath.Join(base, "origin.backup")
	r := runCmd(t, cmdTimeout, nil, bins.broker, "backup", "--data", origin.dir, "--out", file)
	_, atEnd := fleet.snapshot()
	if r.err != nil {
		t.Fatalf("broker backup: %v", r)
	}
	t.Logf("%s", strings.TrimSpace(r.stdout))
	t.Logf("backup began after %d acknowledged check-ins; %d more were acknowledged while `broker backup` ran", atStart, atEnd-atStart)
	if !strings.Contains(r.stdout, "from the running broker") || !strings.Contains(r.stdout, fmt.Sprintf("%d machines", agents+1)) {
		t.Errorf("backup summary %q: want it taken from the running broker, with %d machines", r.stdout, agents+1)
	}
	if atEnd == atStart {
		t.Error("no check-in was acknowledged while the backup ran: the broker stopped taking writes")
	}
	select {
	case <-burstDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("the check-in burst did not end within 2 minutes")
	}
	final, total := fleet.snapshot()
	if err := fleet.err(); err != nil {
		t.Fatalf("check-in burst: %v", err)
	}
	t.Logf("%d check-ins acknowledged in all", total)
	fleet.close()

	// The first broker goes; the backup takes its place, on its ports.
	origin.stop()
	restoredDir := filepath.Join(base, "restored")
	r = runCmd(t, cmdTimeout, nil, bins.broker, "restore", file, "--data", restoredDir)
	if r.err != nil {
		t.Fatalf("broker restore: %v", r)
	}
	restored := &broker{t: t, name: "restored", dir: restoredDir, heartbeat: time.Second}
	var listen []string
	for _, a := range origin.info.Addrs {
		addr, _, _ := strings.Cut(a, "/p2p/")
		listen = append(listen, addr)
	}
	restored.launch(strings.Join(listen, ","))
	if restored.info.PeerID != origin.info.PeerID {
		t.Fatalf("restored broker is %s, the backed-up one was %s", restored.info.PeerID, origin.info.PeerID)
	}

	// Every check-in acknowledged before the backup began is in it; some
	// acknowledged after it are not (it is a snapshot from mid-burst).
	cards := admin.machines()
	stored := map[string]uint64{}
	for _, c := range cards {
		stored[c.ID] = c.Readiness.CheckInSeq
	}
	lost, later := 0, 0
	for id, seq := range before {
		if stored[id] < seq {
			lost++
			t.Errorf("machine %s: check-in %d was acknowledged before the backup; the restored broker holds %d", id, seq, stored[id])
		}
	}
	for id, seq := range final {
		if stored[id] < seq {
			later++
		}
	}
	if len(stored) != agents+1 || lost > 0 {
		t.Errorf("restored broker holds %d machines (want %d); %d lost acknowledged check-ins", len(stored), agents+1, lost)
	}
	t.Logf("%d of %d agents have check-ins acknowledged after the backup began that the backup does not hold, as expected", later, agents)
	if later == 0 {
		t.Error("the backup holds every check-in of the burst: it was not taken during it")
	}

	// The restored broker alone serves its fleet: the real agent, which
	// lost the first broker, finds it and checks in.
	waitOnline(t, admin, 30*time.Second, live)
}

// fleet is agents checking in at the protocol level, each over its own
// bridge with its own key.
type fleet struct {
	t      *testing.T
	broker peer.ID
	agents []*fleetAgent

	mu      sync.Mutex
	acked   map[string]uint64 // mu guards all following fields: machine → newest acknowledged seq
	n       int               // acknowledgements in all
	failure error
}

type fleetAgent struct {
	id   string
	name string
	h    host.Host
}

// dialFleet connects one host per enrolled state directory to b.
func dialFleet(t *testing.T, b *broker, dirs []string) *fleet {
	t.Helper()
	info, err := bridge.AddrInfo(b.info)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, broker: info.ID, acked: map[string]uint64{}}
	t.Cleanup(f.close)
	for i, dir := range dirs {
		key, err := identity.Load(filepath.Join(dir, sessiond.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		h, err := bridge.NewHost(bridge.HostConfig{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		f.agents = append(f.agents, &fleetAgent{id: key.ID.String(), name: fmt.Sprintf("pc-%03d", i), h: h})
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		err = h.Connect(ctx, info)
		cancel()
		if err != nil {
			t.Fatalf("agent %d: connect: %v", i, err)
		}
	}
	return f
}

// burst has every agent send n check-ins back to back, each waiting for
// its acknowledgement, until ctx ends or one fails.
func (f *fleet) burst(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for _, a := range f.agents {
		wg.Go(func() {
			for seq := uint64(1); seq <= uint64(n) && ctx.Err() == nil; seq++ {
				if err := f.checkIn(ctx, a, seq); err != nil {
					f.fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func (f *fleet) checkIn(ctx context.Context, a *fleetAgent, seq uint64) error {
	ci := wire.CheckIn{MachineID: a.id, Seq: seq, Reason: wire.ReasonInterval, Snapshot: wire.Snapshot{
		CollectedAt: time.Now().UTC(), Hostname: a.name, AgentVersion: "0.1.0",
		OS:       wire.OS{Family: "linux", ID: "debian", Name: "Debian GNU/Linux 12", Version: "12", Arch: "amd64"},
		Runtime:  wire.RuntimeConfig{CheckInIntervalSec: 3600, ConsentPolicy: wire.ConsentNever},
		Packages: []wire.Package{{Name: "openssl", Version: fmt.Sprintf("3.0.%d", seq)}}}}
	cctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var ack wire.CheckInAck
	if err := bridge.Call(cctx, a.h, f.broker, wire.ProtoCheckIn, &ci, &ack, wire.MaxControl); err != nil {
		return fmt.Errorf("%s check-in %d: %w", a.name, seq, err)
	}
	if ack.Error != nil || ack.Seq != seq {
		return fmt.Errorf("%s check-in %d: acknowledged %d, %v", a.name, seq, ack.Seq, ack.Error)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acked[a.id] = seq
	f.n++
	return nil
}

func (f *fleet) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failure == nil {
		f.failure = err
	}
}

func (f *fleet) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failure
}

func (f *fleet) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// snapshot returns each machine's newest acknowledged check-in and the
// count of acknowledgements so far.
func (f *fleet) snapshot() (map[string]uint64, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(f.acked))
	for id, seq := range f.acked {
		out[id] = seq
	}
	return out, f.n
}

func (f *fleet) close() {
	for _, a := range f.agents {
		a.h.Close()
	}
	f.agents = nil
}
