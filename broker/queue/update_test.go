package queue

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// gate answers Admit with a fixed verdict and counts the questions.
type gate struct {
	mu     sync.Mutex
	run    bool
	cancel string
	asked  int
}

func (g *gate) Admit(*store.JobRecord) (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked++
	return g.run, g.cancel
}

// releases is a fixed set of release records.
type releases map[string]store.ReleaseRecord

func (rs releases) Release(v string) (store.ReleaseRecord, bool, error) {
	r, ok := rs[v]
	return r, ok, nil
}

var (
	_ Gate     = (*gate)(nil)
	_ Releases = releases(nil)
)

// agent is a machine's agent on its own libp2p host, answering jobs
// with reply and keeping what it was sent.
type agent struct {
	host  host.Host
	reply func(*wire.JobRequest) wire.JobReply

	mu   sync.Mutex
	reqs []wire.JobRequest // mu guards
}

func (a *agent) handle(s network.Stream) {
	defer s.Close()
	var req wire.JobRequest
	if err := wire.NewReader(s).Read(wire.MaxControl+64<<10, &req); err != nil {
		wire.Write(s, &wire.JobReply{Error: &wire.Error{Code: wire.CodeBadRequest, Message: err.Error()}})
		return
	}
	a.mu.Lock()
	a.reqs = append(a.reqs, req)
	a.mu.Unlock()
	rep := a.reply(&req)
	wire.Write(s, &rep)
}

func (a *agent) sent() []wire.JobRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reqs)
}

func newHost(t *testing.T, listen ...string) (host.Host, *identity.Key) {
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
	return h, key
}

// updateRig is a queue on a real store and a real broker host, and one
// agent on loopback QUIC, enrolled and checked in since its bridge
// opened.
type updateRig struct {
	q     *Queue
	st    *store.Store
	agent *agent
	gate  *gate
	id    string // the agent's machine ID
}

const manifest = `{"format":"readymesh-release/1","version":"0.3.0","binaries":[]}`

func newUpdateRig(t *testing.T, reply func(*wire.JobRequest) wire.JobReply) *updateRig {
	t.Helper()
	bh, bkey := newHost(t)
	ah, _ := newHost(t, "/ip4/127.0.0.1/udp/0/quic-v1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bh.Connect(ctx, peer.AddrInfo{ID: ah.ID(), Addrs: ah.Addrs()}); err != nil {
		t.Fatal(err)
	}
	a := &agent{host: ah, reply: reply}
	ah.SetStreamHandler(wire.ProtoJob, a.handle)
	st := fleettest.Open(t)
	id := ah.ID().String()
	fleettest.Enrol(t, st, id, "acme", "pc", now)
	if _, err := st.CheckIn(&wire.CheckIn{MachineID: id, Seq: 1, Reason: wire.ReasonEnroll, Snapshot: fleettest.Snapshot("pc")}, now); err != nil {
		t.Fatal(err)
	}
	g := &gate{run: true}
	rels := releases{"0.3.0": {Version: "0.3.0", Manifest: []byte(manifest), Signature: "untrusted comment: x\nRWQ…",
		KeyID: "0123456789ABCDEF", PublishedBy: "admin", PublishedAt: now}}
	q := New(Config{Name: "eu-1", ID: bh.ID().String(), Now: func() time.Time { return now }}, Deps{
		Store: st, Reach: reach{since: map[string]time.Time{id: now.Add(-time.Minute)}}, Sessions: sessions{}, Fleet: fleet{st: st},
		Host: bh, Key: bkey.Priv, Audit: audit.New(st, nil, nil), Replicated: func(...store.Key) {}, Gate: g, Releases: rels})
	return &updateRig{q: q, st: st, agent: a, gate: g, id: id}
}

// addJob stores an update job (or, with script, a script job) for the
// agent's machine, created at created.
func (r *updateRig) addJob(t *testing.T, id string, script string, created time.Time) store.JobRecord {
	t.Helper()
	j := store.JobRecord{ID: id, Machine: r.id, Client: "acme", Name: "pc", Mode: wire.ModeElevated, CreatedBy: "admin",
		CreatedAt: created, Expires: now.Add(time.Hour), Script: script}
	if script == "" {
		j.Update = &store.JobUpdate{Version: "0.3.0", Rollout: "3f9a0c1b2d4e", HealthWindowSec: 600}
	}
	if err := r.st.CreateJobs([]store.JobRecord{j}); err != nil {
		t.Fatal(err)
	}
	j.State = store.JobQueued
	return j
}

func (r *updateRig) job(t *testing.T, id string) store.JobRecord {
	t.Helper()
	js, err := r.st.Jobs(func(j *store.JobRecord) bool { return j.ID == id })
	if err != nil || len(js) != 1 {
		t.Fatalf("job %s: %v %v", id, js, err)
	}
	return js[0]
}

const updateID, scriptID = "0000000000000000000000000000000a", "0000000000000000000000000000000b"

func staged(*wire.JobRequest) wire.JobReply {
	return wire.JobReply{Output: "0.3.0 staged; restarting into it"}
}

// TestUpdateJobSent: an update job the gate admits is sent like a job,
// under an elevated grant, with the release's manifest and signature and
// no script; the agent's answer ends it.
func TestUpdateJobSent(t *testing.T) {
	r := newUpdateRig(t, staged)
	j := r.addJob(t, updateID, "", now)
	if !r.q.dispatch(t.Context(), j) {
		t.Fatal("dispatch did not end the job")
	}
	reqs := r.agent.sent()
	if len(reqs) != 1 {
		t.Fatalf("agent got %d requests", len(reqs))
	}
	req := reqs[0]
	u := req.Update
	if req.Script != "" || u == nil || u.Version != "0.3.0" || string(u.Manifest) != manifest || !strings.HasPrefix(u.Signature, "untrusted comment") ||
		u.Rollout != "3f9a0c1b2d4e" || u.HealthWindowSec != 600 || u.Rollback || req.QueryOnly {
		t.Fatalf("request %+v, update %+v", req, u)
	}
	bid, _ := peer.Decode(r.q.cfg.ID)
	g, err := mesh.VerifyGrant(req.Grant, r.agent.host.ID(), func(p peer.ID) bool { return p == bid }, now)
	if err != nil || g.Mode != wire.ModeElevated || g.TechnicianName != "queue (admin)" {
		t.Errorf("grant %+v, %v", g, err)
	}
	if got := r.job(t, updateID); got.State != store.JobDone || got.Result.Output != "0.3.0 staged; restarting into it" {
		t.Errorf("job %s %+v", got.State, got.Result)
	}
}

// TestUpdateJobGated: what the gate says decides whether an update job
// is sent; one that waits does not hold the machine's later jobs.
func TestUpdateJobGated(t *testing.T) {
	tests := []struct {
		desc      string
		run       bool
		cancel    string
		wantState string
	}{
		{"waits", false, "", store.JobQueued},
		{"cancelled", false, "cancelled: rollout 3f9a0c1b2d4e was aborted", store.JobCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := newUpdateRig(t, staged)
			r.gate.run, r.gate.cancel = tc.run, tc.cancel
			up := r.addJob(t, updateID, "", now)
			script := r.addJob(t, scriptID, "echo hi", now.Add(time.Second))
			slots := make(chan struct{}, 1)
			slots <- struct{}{}
			r.q.busy[r.id] = true
			r.q.runMachine(t.Context(), r.id, []store.JobRecord{up, script}, slots)
			reqs := r.agent.sent()
			if len(reqs) != 1 || reqs[0].Job != scriptID || reqs[0].Update != nil {
				t.Fatalf("sent %+v; want only the script job", reqs)
			}
			got := r.job(t, updateID)
			if got.State != tc.wantState {
				t.Errorf("update job %s, want %s", got.State, tc.wantState)
			}
			if tc.cancel != "" && (got.Result == nil || got.Result.Error != tc.cancel) {
				t.Errorf("cancelled with %+v", got.Result)
			}
			if r.job(t, scriptID).State != store.JobDone {
				t.Error("the script job did not run")
			}
		})
	}
}

// TestUpdateJobRefused: the agent's reason for refusing an update is the
// job's error.
func TestUpdateJobRefused(t *testing.T) {
	const why = "manifest signed by another key (ABCDEF0123456789), not the pinned one"
	r := newUpdateRig(t, func(*wire.JobRequest) wire.JobReply {
		return wire.JobReply{Error: &wire.Error{Code: wire.CodeForbidden, Message: why}}
	})
	r.q.dispatch(t.Context(), r.addJob(t, updateID, "", now))
	if got := r.job(t, updateID); got.State != store.JobFailed || got.Result.Error != why {
		t.Errorf("job %s %+v", got.State, got.Result)
	}
}

// TestUpdateJobWithoutRelease: an update job whose release is not stored
// here, or with no gate, waits without being sent.
func TestUpdateJobWithoutRelease(t *testing.T) {
	for _, desc := range []string{"no release here", "no gate"} {
		t.Run(desc, func(t *testing.T) {
			r := newUpdateRig(t, staged)
			if desc == "no gate" {
				r.q.deps.Gate = nil
			} else {
				r.q.deps.Releases = releases{}
			}
			if !r.q.dispatch(t.Context(), r.addJob(t, updateID, "", now)) {
				t.Error("a waiting update job holds the machine's next jobs")
			}
			if len(r.agent.sent()) != 0 || r.job(t, updateID).State != store.JobQueued {
				t.Errorf("sent %d, state %s", len(r.agent.sent()), r.job(t, updateID).State)
			}
		})
	}
}

// TestUpdateJobWithdrawnWhileRunning: a running update job whose release
// was withdrawn is only asked about; an agent that never took it ends it
// failed, and the release is never installed.
func TestUpdateJobWithdrawnWhileRunning(t *testing.T) {
	r := newUpdateRig(t, func(req *wire.JobRequest) wire.JobReply {
		if !req.QueryOnly {
			return staged(req)
		}
		return wire.JobReply{Error: &wire.Error{Code: wire.CodeNotFound, Message: "no such job"}}
	})
	r.addJob(t, updateID, "", now)
	j, err := r.st.UpdateJob(updateID, func(j *store.JobRecord) error {
		j.State, j.Broker, j.Result = store.JobRunning, "eu-2", &store.JobResult{Session: "s-1"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rel := r.q.deps.Releases.(releases)["0.3.0"]
	rel.Withdrawn, rel.WithdrawnBy = true, "carol"
	r.q.deps.Releases = releases{"0.3.0": rel}
	r.q.dispatch(t.Context(), j)
	reqs := r.agent.sent()
	if len(reqs) != 1 || !reqs[0].QueryOnly {
		t.Fatalf("sent %+v; want one query", reqs)
	}
	got := r.job(t, updateID)
	if got.State != store.JobFailed || !strings.Contains(got.Result.Error, "withdrawn before the agent took it") {
		t.Errorf("job %s %+v", got.State, got.Result)
	}
}
