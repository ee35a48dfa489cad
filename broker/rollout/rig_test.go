package rollout

import (
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// releases is the releases room as a fixed set of published records.
type releases struct {
	mu   sync.Mutex
	recs map[string]store.ReleaseRecord
}

func (rs *releases) Release(v string) (store.ReleaseRecord, bool, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.recs[v]
	return r, ok, nil
}

// publish adds a release whose manifest names minAgent.
func (rs *releases) publish(t testing.TB, version, minAgent string) {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"format": "readymesh-release/1", "version": version, "min_agent_version": minAgent})
	if err != nil {
		t.Fatal(err)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.recs[version] = store.ReleaseRecord{Version: version, Manifest: raw, Signature: "untrusted comment: test\nRW…",
		KeyID: "0123456789ABCDEF", PublishedBy: "admin", PublishedAt: now}
}

func (rs *releases) withdraw(version, by string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := rs.recs[version]
	r.Withdrawn, r.WithdrawnBy = true, by
	rs.recs[version] = r
}

// reach: the machines online anywhere in the cluster.
type reach struct {
	mu     sync.Mutex
	online map[string]bool
}

func (r *reach) Reach(m *store.Machine) wire.Reachability {
	r.mu.Lock()
	defer r.mu.Unlock()
	return wire.Reachability{Online: r.online[m.ID]}
}

func (r *reach) set(id string, online bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.online[id] = online
}

// members is a cluster's member list as gossip shows it.
type members struct {
	local string
	list  []cluster.Member
}

func (m *members) Members() []cluster.Member { return m.list }
func (m *members) LocalName() string         { return m.local }

var (
	_ Releases = (*releases)(nil)
	_ Reach    = (*reach)(nil)
	_ Members  = (*members)(nil)
	_ Store    = (*store.Store)(nil)
)

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

var admin = &wire.Technician{Name: "admin", Admin: true}

// rig is a rollout room on a real store, with its machines, their
// agents' behaviour and a clock the test moves.
type rig struct {
	t     *testing.T
	st    *store.Store
	room  *Room
	rel   *releases
	reach *reach

	mu       sync.Mutex
	clock    time.Time
	seq      map[string]uint64
	behave   map[string]string // machine ID → what its agent does with an update
	changed  int               // calls of Deps.Changed
	replKeys []store.Key
}

// What an agent does with an update job.
const (
	good   = "good"   // takes it and checks in on the new version
	broken = "broken" // takes it; the new binary exits at start and the agent rolls back
	refuse = "refuse" // refuses it
	silent = "silent" // takes it and is not heard of again
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, st: fleettest.Open(t), rel: &releases{recs: map[string]store.ReleaseRecord{}},
		reach: &reach{online: map[string]bool{}}, clock: now, seq: map[string]uint64{}, behave: map[string]string{}}
	r.rel.publish(t, "0.3.0", "0.2.0")
	r.room = r.newRoom("eu-1", nil)
	return r
}

// newRoom is a room of broker name on the rig's store.
func (r *rig) newRoom(name string, m Members) *Room {
	return New(Config{Name: name, Batch: 100, Now: r.now, Logger: slog.New(slog.NewTextHandler(logWriter{r.t}, nil))},
		Deps{Store: r.st, Releases: r.rel, Reach: r.reach, Members: m, Audit: audit.New(r.st, nil, nil),
			Replicated: r.replicated, Changed: func() { r.mu.Lock(); r.changed++; r.mu.Unlock() }})
}

func (r *rig) now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clock
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock = r.clock.Add(d)
}

func (r *rig) replicated(keys ...store.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replKeys = append(r.replKeys, keys...)
}

// machine enrols client/name (its ID is "id-client-name"), checked in
// on version, online, with a good agent.
func (r *rig) machine(client, name, version string) string {
	r.t.Helper()
	id := "id-" + client + "-" + name
	fleettest.Enrol(r.t, r.st, id, client, name, now)
	r.checkIn(id, version, wire.ReasonEnroll, nil)
	r.reach.set(id, true)
	r.behave[id] = good
	return id
}

// checkIn stores a check-in of id on version, through the store's API.
func (r *rig) checkIn(id, version, reason string, rep *wire.UpdateReport) {
	r.t.Helper()
	r.mu.Lock()
	r.seq[id]++
	seq := r.seq[id]
	r.mu.Unlock()
	snap := fleettest.Snapshot(id)
	snap.AgentVersion = version
	ci := &wire.CheckIn{MachineID: id, Seq: seq, Reason: reason, Snapshot: snap, Update: rep}
	if _, err := r.st.CheckIn(ci, r.now()); err != nil {
		r.t.Fatal(err)
	}
}

// start starts a rollout of 0.3.0 as admin.
func (r *rig) start(a wire.RolloutArgs) wire.Rollout {
	r.t.Helper()
	if a.Version == "" {
		a.Version = "0.3.0"
	}
	if err := a.Validate(); err != nil {
		r.t.Fatal(err)
	}
	ro, werr := r.room.Start(admin, &a)
	if werr != nil {
		r.t.Fatal(werr)
	}
	return ro
}

// dispatch plays the queue and the agents once: each queued update job
// of an online machine is offered to the gate, and the ones it lets
// through run as their agents behave. It returns the machines that ran.
func (r *rig) dispatch() []string {
	r.t.Helper()
	js, err := r.st.Jobs(func(j *store.JobRecord) bool { return j.Update != nil && j.State == store.JobQueued })
	if err != nil {
		r.t.Fatal(err)
	}
	var ran []string
	for i := range js {
		j := &js[i]
		if !r.reach.Reach(&store.Machine{ID: j.Machine}).Online {
			continue
		}
		run, cancel := r.room.Admit(j)
		switch {
		case cancel != "":
			r.endJob(j.ID, store.JobCancelled, &store.JobResult{ExitCode: -1, Error: cancel})
		case run:
			r.agent(j)
			ran = append(ran, j.Name)
		}
	}
	return ran
}

// agent runs update job j as its machine's agent behaves.
func (r *rig) agent(j *store.JobRecord) {
	r.endJob(j.ID, store.JobRunning, &store.JobResult{Session: "s-" + j.ID[:8]})
	from, to := j.PlannedAgent, j.Update.Version
	rep := &wire.UpdateReport{From: from, To: to, Rollout: j.Update.Rollout, At: r.now()}
	switch r.behave[j.Machine] {
	case refuse:
		r.endJob(j.ID, store.JobFailed, &store.JobResult{ExitCode: -1, Error: "manifest signed by another key (ABCDEF0123456789)"})
		return
	}
	r.endJob(j.ID, store.JobDone, &store.JobResult{Output: to + " staged; restarting into it"})
	switch r.behave[j.Machine] {
	case good:
		rep.Outcome = wire.ReasonUpdated
		r.checkIn(j.Machine, to, wire.ReasonUpdated, rep)
	case broken:
		rep.Outcome, rep.Detail = wire.ReasonRolledBack, "rolled back from "+to+": exited with status 2 three times at start"
		r.checkIn(j.Machine, from, wire.ReasonRolledBack, rep)
	}
}

func (r *rig) endJob(id, state string, res *store.JobResult) {
	r.t.Helper()
	if state != store.JobRunning {
		res.Finished = r.now()
	}
	if _, err := r.st.UpdateJob(id, func(j *store.JobRecord) error {
		j.State, j.Result = state, res
		return nil
	}); err != nil {
		r.t.Fatal(err)
	}
}

// status is rollout id's machines' steps, as "name step".
func (r *rig) status(id string) (wire.Rollout, map[string]string) {
	r.t.Helper()
	ro, werr := r.room.Status(admin, &wire.RolloutIDArgs{ID: id})
	if werr != nil {
		r.t.Fatal(werr)
	}
	steps := map[string]string{}
	for _, m := range ro.Machines {
		steps[m.Machine] = m.Step
	}
	return ro, steps
}

// jobs lists the update jobs' machines (client/name), sorted.
func (r *rig) jobs(keep func(*store.JobRecord) bool) []string {
	r.t.Helper()
	js, err := r.st.Jobs(func(j *store.JobRecord) bool { return j.Update != nil && (keep == nil || keep(j)) })
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, j := range js {
		out = append(out, j.Client+"/"+j.Name)
	}
	slices.Sort(out)
	return out
}

// events lists the audit log's rollout events, oldest first, as
// "event by".
func (r *rig) events() []string {
	r.t.Helper()
	es, err := r.st.AuditLog(100, func(e *wire.AuditEntry) bool { return strings.HasPrefix(e.Event, "rollout.") })
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for i := len(es) - 1; i >= 0; i-- {
		out = append(out, es[i].Event+" "+es[i].Technician)
	}
	return out
}

// settle ticks and dispatches until nothing changes, at most 20 rounds.
func (r *rig) settle() {
	r.t.Helper()
	last := ""
	for range 20 {
		r.room.tick()
		r.dispatch()
		recs, _ := r.st.Rollouts(nil)
		js, _ := r.st.Jobs(nil)
		raw, _ := json.Marshal([]any{recs, js})
		state := string(raw)
		if state == last {
			return
		}
		last = state
	}
	r.t.Fatal("no steady state after 20 rounds")
}

func (r *rig) rolloutRecord(id string) store.RolloutRecord {
	r.t.Helper()
	rec, found, err := r.st.Rollout(id)
	if err != nil || !found {
		r.t.Fatalf("rollout %s: %v %v", id, found, err)
	}
	return rec
}
