package sessiond

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/pion/transport/v5"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/update"
)

// updateRig is an enrolled agent whose executable is a file in a
// temporary directory, bridged to a stand-in broker that sends it jobs
// and serves one release blob over wire.ProtoRelease.
type updateRig struct {
	a      *Agent
	broker *standIn
	exe    update.Paths
	old    []byte // EXE's bytes
	blob   []byte // what the stand-in serves
}

// enrolled is a state directory enrolled with a stand-in broker.
type enrolled struct {
	state    string
	agentNet transport.Net
	broker   *standIn
}

// enrol enrols an agent with a token carrying release key pinned (none
// when "").
func enrol(t *testing.T, pinned string) enrolled {
	t.Helper()
	agentNet, brokerNet := newVnet(t)
	broker, info := newStandIn(t, brokerNet)
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok := wire.Token{Kind: wire.KindEnroll, Secret: wire.NewSecret(), Broker: info, ReleaseKey: pinned}
	if _, err := Enroll(ctx, EnrollConfig{StateDir: state, Token: tok.String(), Name: "pc-1", Net: agentNet}); err != nil {
		t.Fatal(err)
	}
	<-broker.enrolledFrom
	return enrolled{state: state, agentNet: agentNet, broker: broker}
}

// newUpdateRig enrols an agent with release key pinned (none when "")
// and starts it, without running it.
func newUpdateRig(t *testing.T, pinned string, blob []byte) *updateRig {
	t.Helper()
	e := enrol(t, pinned)
	broker := e.broker
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := &updateRig{broker: broker, exe: update.PathsFor(filepath.Join(t.TempDir(), "sessiond")), old: []byte("the running agent"), blob: blob}
	os.WriteFile(r.exe.Exe, r.old, 0o755)
	a, err := New(Config{StateDir: e.state, Net: e.agentNet, SystemBus: NoSystemBus, Executable: r.exe.Exe, Inventory: fixture(t),
		DownloadChunkTimeout: 2 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	r.a = a
	broker.host.SetStreamHandler(wire.ProtoRelease, r.serveBlob)
	checkBridgeOnNet(ctx, t, a, broker.host)
	a.setUp(true, broker.host.ID(), "")
	return r
}

// serveBlob serves gets of the rig's blob, whatever its name.
func (r *updateRig) serveBlob(s network.Stream) {
	defer s.Close()
	var req wire.BlobRequest
	if err := wire.NewReader(s).Read(wire.MaxControl, &req); err != nil {
		return
	}
	wire.Write(s, &wire.BlobReply{Have: int64(len(r.blob))})
	if req.Offset < int64(len(r.blob)) {
		s.Write(r.blob[req.Offset:])
	}
}

// sendJob sends an update job as the broker's queue does, under a grant
// of mode the stand-in issues to itself, and returns the agent's reply.
func (r *updateRig) sendJob(t *testing.T, job string, mode string, o *wire.UpdateOrder) wire.JobReply {
	t.Helper()
	h := r.broker.host
	sg, _, err := mesh.IssueGrant(h.Peerstore().PrivKey(h.ID()), wire.Grant{Technician: h.ID().String(),
		Machine: r.a.key.ID.String(), Mode: mode, TechnicianName: "queue"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rep wire.JobReply
	req := wire.JobRequest{Grant: sg, Job: job, Update: o}
	if err := bridge.Call(ctx, h, r.a.key.ID, wire.ProtoJob, &req, &rep, wire.MaxControl); err != nil {
		t.Fatal(err)
	}
	return rep
}

// checkNothingReplaced checks that a refused update left the install and
// the state as they were.
func (r *updateRig) checkNothingReplaced(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile(r.exe.Exe); err == nil && !bytes.Equal(b, r.old) {
		t.Error("EXE changed")
	}
	for _, f := range []string{r.exe.New, r.exe.Previous, r.exe.New + ".tmp"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s is there", filepath.Base(f))
		}
	}
	if tr, err := update.LoadTrial(r.a.cfg.StateDir); tr != nil || err != nil {
		t.Errorf("trial state %+v, %v", tr, err)
	}
	if parts, _ := filepath.Glob(filepath.Join(update.Dir(r.a.cfg.StateDir), "*.part")); len(parts) != 0 {
		t.Errorf("downloads kept: %v", parts)
	}
	if r.a.Staged() != nil {
		t.Error("the agent handed over")
	}
}

// testRelease is a release key and a way to sign manifests with it.
type testRelease struct {
	pub  minisign.PublicKey
	priv minisign.PrivateKey
}

func newTestRelease(t *testing.T) testRelease {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testRelease{pub: pub, priv: priv}
}

// order signs a manifest of version naming bin for this platform.
func (k testRelease) order(t *testing.T, version, minAgent string, bin []byte, edit func(*release.Manifest)) *wire.UpdateOrder {
	sum := sha256.Sum256(bin)
	m := release.Manifest{Format: release.Format, Version: version, MinAgent: minAgent, Created: time.Now().UTC().Truncate(time.Second),
		Binaries: []wire.ReleaseBinary{{Platform: runtime.GOOS + "/" + runtime.GOARCH, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(bin))}}}
	if edit != nil {
		edit(&m)
	}
	body, _ := json.Marshal(m)
	sig := minisign.SignWithComments(k.priv, body, "readymesh release "+version, "test")
	return &wire.UpdateOrder{Version: version, Manifest: body, Signature: string(sig), Rollout: "3f9a0c1b2d4e", HealthWindowSec: 900}
}

// TestUpdateJob: an update job whose release verifies is downloaded,
// staged next to the executable and handed over to; every refusal says
// why and replaces nothing.
func TestUpdateJob(t *testing.T) {
	key, other := newTestRelease(t), newTestRelease(t)
	newBin := make([]byte, 256<<10)
	rand.Read(newBin)
	tampered := bytes.Clone(newBin)
	tampered[100] ^= 0xff
	next, older := "99.0.0", "0.0.1"
	for _, tc := range []struct {
		name   string
		pinned string
		serve  []byte
		mode   string
		order  *wire.UpdateOrder
		trial  bool             // a trial is on already
		edit   func(*updateRig) // changes the rig before the job
		refuse string           // substring of the refusal; "" means staged
	}{
		{name: "staged", pinned: key.pub.String(), order: key.order(t, next, "", newBin, nil)},
		{name: "no pinned key", order: key.order(t, next, "", newBin, nil), refuse: "no release key is pinned"},
		{name: "signed by another key", pinned: key.pub.String(), order: other.order(t, next, "", newBin, nil),
			refuse: "not signed by the pinned release key"},
		{name: "tampered binary", pinned: key.pub.String(), serve: tampered, order: key.order(t, next, "", newBin, nil),
			refuse: "SHA-256 mismatch"},
		{name: "manifest hash is not the binary's", pinned: key.pub.String(),
			order:  key.order(t, next, "", newBin, func(m *release.Manifest) { m.Binaries[0].SHA256 = strings.Repeat("0", 64) }),
			refuse: "SHA-256 mismatch"},
		{name: "downgrade", pinned: key.pub.String(), order: key.order(t, older, "", newBin, nil), refuse: "only a rollback rollout"},
		{name: "below the minimum agent", pinned: key.pub.String(), order: key.order(t, next, "98.0.0", newBin, nil),
			refuse: "updates agents from 98.0.0 on; this agent is " + buildinfo.Version},
		{name: "not elevated", pinned: key.pub.String(), mode: wire.ModeInteractive, order: key.order(t, next, "", newBin, nil),
			refuse: "an update job needs an elevated grant"},
		{name: "a trial is on", pinned: key.pub.String(), trial: true, order: key.order(t, next, "", newBin, nil),
			refuse: "still on trial"},
		{name: "install directory not writable", pinned: key.pub.String(), order: key.order(t, next, "", newBin, nil),
			edit: func(r *updateRig) {
				// A directory the agent cannot create files in: a file's
				// path (root may write even where the mode forbids it).
				r.exe = update.PathsFor(filepath.Join(r.exe.Exe, "sessiond"))
				r.a.cfg.Executable = r.exe.Exe
			},
			refuse: "cannot write next to its executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve := newBin
			if tc.serve != nil {
				serve = tc.serve
			}
			r := newUpdateRig(t, tc.pinned, serve)
			if tc.edit != nil {
				tc.edit(r)
			}
			if tc.trial {
				on := update.NewTrial(buildinfo.Version, "50.0.0", time.Hour, time.Now())
				on.Exe = r.exe.Exe
				on.Save(r.a.cfg.StateDir)
			}
			mode := wire.ModeElevated
			if tc.mode != "" {
				mode = tc.mode
			}
			job := strings.Repeat("7", 32)
			rep := r.sendJob(t, job, mode, tc.order)
			if tc.trial {
				update.RemoveTrial(r.a.cfg.StateDir)
			}
			if tc.refuse != "" {
				if rep.Error == nil || !strings.Contains(rep.Error.Message, tc.refuse) {
					t.Fatalf("reply %+v, want a refusal: %q", rep, tc.refuse)
				}
				r.checkNothingReplaced(t)
				return
			}
			r.checkStaged(t, rep, newBin, tc.order)
			// Asked again, the agent answers from its record.
			if again := r.sendJob(t, job, mode, tc.order); !again.Replayed || again.Output != rep.Output {
				t.Errorf("the same job again: %+v", again)
			}
		})
	}
}

// checkStaged checks a staged update: the reply, EXE.new, the trial
// state, and the hand-over.
func (r *updateRig) checkStaged(t *testing.T, rep wire.JobReply, bin []byte, o *wire.UpdateOrder) {
	t.Helper()
	if rep.Error != nil || !strings.Contains(rep.Output, "99.0.0 staged; restarting into it") {
		t.Fatalf("reply %+v", rep)
	}
	if b, _ := os.ReadFile(r.exe.Exe); !bytes.Equal(b, r.old) {
		t.Error("EXE changed before the trial")
	}
	if b, err := os.ReadFile(r.exe.New); err != nil || !bytes.Equal(b, bin) {
		t.Errorf("EXE.new is not the release's binary (%v)", err)
	}
	tr, err := update.LoadTrial(r.a.cfg.StateDir)
	if err != nil || tr == nil {
		t.Fatalf("no trial state: %v", err)
	}
	if tr.From != buildinfo.Version || tr.To != "99.0.0" || tr.Rollout != o.Rollout || tr.Exe != r.exe.Exe ||
		tr.Window() != 15*time.Minute || tr.Phase != update.PhaseTrial || tr.Starts != 0 || !bytes.Equal(tr.Manifest, o.Manifest) {
		t.Errorf("trial state %+v", tr)
	}
	// The hand-over follows the reply once the broker has closed its
	// side of the stream.
	s := r.a.Staged()
	for end := time.Now().Add(10 * time.Second); s == nil && time.Now().Before(end); s = r.a.Staged() {
		time.Sleep(10 * time.Millisecond)
	}
	if s == nil || s.ID != tr.ID {
		t.Errorf("handed over to %+v", s)
	}
}

// fixture writes an inventory fixture, so check-ins do not wait for this
// machine's collectors.
func fixture(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "inventory.json")
	os.WriteFile(path, []byte(`{"hostname":"pc-1","os":{"family":"linux","name":"Debian","version":"12"}}`), 0o600)
	return path
}

// testLogger returns a logger that writes through t.Log until t ends.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&tWriter{t: t}, nil))
}

type tWriter struct{ t *testing.T }

func (w *tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// servePresence makes the stand-in hold presence streams as a broker
// does: the hello answered, every heartbeat acknowledged.
func servePresence(b *standIn) {
	b.host.SetStreamHandler(wire.ProtoPresence, func(s network.Stream) {
		defer s.Close()
		r := wire.NewReader(s)
		var hello wire.Hello
		if r.Read(wire.MaxControl, &hello) != nil {
			return
		}
		wire.Write(s, &wire.HelloReply{HeartbeatMS: 500})
		for {
			var hb wire.Heartbeat
			if r.Read(wire.MaxControl, &hb) != nil {
				return
			}
			wire.Write(s, &wire.HeartbeatAck{Seq: hb.Seq})
		}
	})
}

// TestRunHandsOver: a running agent that staged an update stops by
// itself, its bridge closed cleanly and its database released, and says
// what it staged: its caller becomes the new binary's watchdog.
func TestRunHandsOver(t *testing.T) {
	key := newTestRelease(t)
	newBin := []byte("the next agent binary")
	e := enrol(t, key.pub.String())
	servePresence(e.broker)
	exe := update.PathsFor(filepath.Join(t.TempDir(), "sessiond"))
	os.WriteFile(exe.Exe, []byte("the running agent"), 0o755)
	a, err := New(Config{StateDir: e.state, Net: e.agentNet, SystemBus: NoSystemBus, Executable: exe.Exe, Inventory: fixture(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := &updateRig{a: a, broker: e.broker, exe: exe, blob: newBin}
	e.broker.host.SetStreamHandler(wire.ProtoRelease, r.serveBlob)
	r.checkIns(nil)
	ran := make(chan error, 1)
	go func() { ran <- a.Run(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := a.waitUp(ctx); err != nil {
		t.Fatal(err)
	}
	rep := r.sendJob(t, strings.Repeat("8", 32), wire.ModeElevated, key.order(t, "99.0.0", "", newBin, nil))
	if rep.Error != nil {
		t.Fatalf("refused: %v", rep.Error)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the agent did not stop to hand over")
	}
	if s := a.Staged(); s == nil || s.To != "99.0.0" {
		t.Fatalf("staged %+v", s)
	}
	if err := WaitUnlocked(ctx, e.state, time.Second); err != nil {
		t.Errorf("the database is still held: %v", err)
	}
}
