package queue

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// reach is the reachability layer as fixed answers.
type reach struct {
	since map[string]time.Time // machines online here, since when
}

func (r reach) Online(id string) bool { _, ok := r.since[id]; return ok }
func (r reach) Since(id string) (time.Time, bool) {
	s, ok := r.since[id]
	return s, ok
}

// sessions: the sessions waiting for consent, as "machine/session".
type sessions map[string]bool

func (s sessions) Waiting(id, session string) bool { return s[id+"/"+session] }

// fleet answers a filter with the stored machines of its client that the
// technician may see, plus any cards it is told to add.
type fleet struct {
	st    *store.Store
	extra []wire.Card
}

func (f fleet) Cards(t *wire.Technician, a wire.MachinesArgs) []wire.Card {
	out := slices.Clone(f.extra)
	for _, m := range f.st.Machines() {
		if scope.Visible(t, m.Client) && (a.Client == "" || a.Client == m.Client) {
			out = append(out, wire.Card{ID: m.ID, Name: m.Name, Client: m.Client})
		}
	}
	return out
}

var (
	_ Reach    = reach{}
	_ Sessions = sessions{}
	_ Fleet    = fleet{}
)

// rig is a queue on a real store with acme/web, acme/db and beta/web.
type rig struct {
	q  *Queue
	st *store.Store

	mu         sync.Mutex
	replicated []store.Key // mu guards
}

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func newRig(t *testing.T) *rig {
	t.Helper()
	st := fleettest.Open(t)
	for _, m := range []struct{ id, client, name string }{
		{"id-acme-web", "acme", "web"}, {"id-acme-db", "acme", "db"}, {"id-beta-web", "beta", "web"},
	} {
		fleettest.Enrol(t, st, m.id, m.client, m.name, now)
	}
	r := &rig{st: st}
	r.q = New(Config{Name: "eu-1", Now: func() time.Time { return now }}, Deps{
		Store: st, Reach: reach{since: map[string]time.Time{}}, Sessions: sessions{}, Fleet: fleet{st: st},
		Audit: audit.New(st, nil, nil), Replicated: r.replicate})
	return r
}

func (r *rig) replicate(keys ...store.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replicated = append(r.replicated, keys...)
}

func (r *rig) replicatedKeys() []store.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.replicated)
}

// Technicians.
var (
	alice  = &wire.Technician{Name: "alice", Clients: []string{"acme"}, Modes: []string{wire.ModeInteractive}}
	reader = &wire.Technician{Name: "reader", Clients: []string{"*"}, Modes: []string{wire.ModeReadOnly}}
	admin  = &wire.Technician{Name: "admin", Admin: true}
)

func args(mode string, machines ...string) *wire.QueueArgs {
	return &wire.QueueArgs{Machines: machines, Script: "apt-get upgrade -y", Mode: mode, ExpiresSec: 3600}
}

// machinesOf lists the jobs' machines, sorted.
func machinesOf(js []wire.Job) []string {
	var out []string
	for _, j := range js {
		out = append(out, j.Machine)
	}
	slices.Sort(out)
	return out
}

func TestAdd(t *testing.T) {
	tests := []struct {
		desc string
		tech *wire.Technician
		args *wire.QueueArgs
		want []string // machines, sorted
		code string
	}{
		{"by name", alice, args(wire.ModeInteractive, "web"), []string{"acme/web"}, ""},
		{"by ID and client/name", alice, args(wire.ModeInteractive, "id-acme-db", "acme/web"), []string{"acme/db", "acme/web"}, ""},
		{"mode not allowed", reader, args(wire.ModeElevated, "acme/web"), nil, wire.CodeForbidden},
		{"admin runs any mode", admin, args(wire.ModeElevated, "beta/web"), []string{"beta/web"}, ""},
		{"unknown machine", alice, args(wire.ModeInteractive, "web", "nothing"), nil, wire.CodeNotFound},
		{"machine outside the scope", alice, args(wire.ModeInteractive, "beta/web"), nil, wire.CodeNotFound},
		{"ambiguous name", admin, args(wire.ModeInteractive, "web"), nil, wire.CodeConflict},
		{"by client filter", alice, &wire.QueueArgs{Client: "acme", Script: "x", Mode: wire.ModeInteractive}, []string{"acme/db", "acme/web"}, ""},
		{"a name and a filter, each machine once", alice,
			&wire.QueueArgs{Machines: []string{"web"}, Client: "acme", Script: "x", Mode: wire.ModeInteractive}, []string{"acme/db", "acme/web"}, ""},
		{"filter matching nothing", alice, &wire.QueueArgs{Client: "beta", Script: "x", Mode: wire.ModeInteractive}, nil, wire.CodeNotFound},
		{"bad readiness filter", alice, &wire.QueueArgs{Readiness: "bogus", Script: "x", Mode: wire.ModeInteractive}, nil, wire.CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := newRig(t)
			js, werr := r.q.Add(tc.tech, tc.args)
			if tc.code != "" {
				if werr == nil || werr.Code != tc.code {
					t.Fatalf("Add = %v, %v; want %s", machinesOf(js), werr, tc.code)
				}
				if stored, _ := r.st.Jobs(nil); len(stored) != 0 || len(r.replicatedKeys()) != 0 {
					t.Errorf("a refused Add stored %d jobs", len(stored))
				}
				return
			}
			if werr != nil {
				t.Fatal(werr)
			}
			if got := machinesOf(js); !slices.Equal(got, tc.want) {
				t.Errorf("jobs for %v, want %v", got, tc.want)
			}
			for _, j := range js {
				if j.State != store.JobQueued || j.Script != "" || j.CreatedBy != tc.tech.Name || j.Mode != tc.args.Mode ||
					!j.Expires.Equal(now.Add(time.Duration(tc.args.ExpiresSec)*time.Second)) {
					t.Errorf("job %+v", j)
				}
			}
			if stored, _ := r.st.Jobs(nil); len(stored) != len(tc.want) || stored[0].Script != tc.args.Script {
				t.Errorf("stored %d jobs, want %d with their script", len(stored), len(tc.want))
			}
			if keys := r.replicatedKeys(); len(keys) != len(tc.want) || keys[0].Kind != store.KindJob {
				t.Errorf("replicated %v", keys)
			}
			if es, _ := r.st.AuditLog(10, nil); len(es) != len(tc.want) || es[0].Event != "job.queued" {
				t.Errorf("audited %+v", es)
			}
		})
	}
}

// TestAddFilterSkipsUnstored: a card whose machine is not stored (yet)
// plans no job.
func TestAddFilterSkipsUnstored(t *testing.T) {
	r := newRig(t)
	r.q.deps.Fleet = fleet{st: r.st, extra: []wire.Card{{ID: "id-elsewhere", Client: "acme", Name: "ghost"}}}
	js, werr := r.q.Add(alice, &wire.QueueArgs{Client: "acme", Script: "x", Mode: wire.ModeInteractive})
	if werr != nil || !slices.Equal(machinesOf(js), []string{"acme/db", "acme/web"}) {
		t.Errorf("Add = %v, %v", machinesOf(js), werr)
	}
}

// TestAddPlansAgainstCheckIn: a job remembers the check-in it was
// planned against.
func TestAddPlansAgainstCheckIn(t *testing.T) {
	r := newRig(t)
	ci := &wire.CheckIn{MachineID: "id-acme-web", Seq: 7, Reason: wire.ReasonInterval, Snapshot: fleettest.Snapshot("web")}
	if _, err := r.st.CheckIn(ci, time.Now()); err != nil {
		t.Fatal(err)
	}
	js, werr := r.q.Add(alice, args(wire.ModeInteractive, "acme/web"))
	if werr != nil || len(js) != 1 || js[0].PlannedSeq != 7 {
		t.Errorf("Add = %+v, %v; want planned against check-in 7", js, werr)
	}
	stored, _ := r.st.Jobs(nil)
	if len(stored) != 1 || stored[0].PlannedAgent != "0.1.0" {
		t.Errorf("stored %+v", stored)
	}
}

// seedJobs stores jobs with chosen IDs: two share their first 8 digits.
func seedJobs(t *testing.T, r *rig) {
	t.Helper()
	js := []store.JobRecord{
		{ID: "abcdef0100000000000000000000000a", Machine: "id-acme-web", Client: "acme", Name: "web", Script: "a", Mode: wire.ModeInteractive, CreatedBy: "alice", CreatedAt: now},
		{ID: "abcdef0100000000000000000000000b", Machine: "id-acme-db", Client: "acme", Name: "db", Script: "b", Mode: wire.ModeInteractive, CreatedBy: "alice", CreatedAt: now.Add(time.Second)},
		{ID: "123456000000000000000000000000cc", Machine: "id-beta-web", Client: "beta", Name: "web", Script: "c", Mode: wire.ModeInteractive, CreatedBy: "admin", CreatedAt: now.Add(2 * time.Second)},
	}
	if err := r.st.CreateJobs(js); err != nil {
		t.Fatal(err)
	}
}

func TestShow(t *testing.T) {
	r := newRig(t)
	seedJobs(t, r)
	tests := []struct {
		desc string
		tech *wire.Technician
		id   string
		want string // the job's machine
		code string
	}{
		{"ambiguous prefix", alice, "abcdef01", "", wire.CodeConflict},
		{"longer prefix", alice, "abcdef0100000000000000000000000b", "acme/db", ""},
		{"unique prefix", admin, "123456", "beta/web", ""},
		{"outside the scope", alice, "123456", "", wire.CodeNotFound},
		{"no such job", admin, "ffffff", "", wire.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			j, werr := r.q.Show(tc.tech, &wire.JobArgs{ID: tc.id})
			if tc.code != "" {
				if werr == nil || werr.Code != tc.code {
					t.Errorf("Show = %+v, %v; want %s", j, werr, tc.code)
				}
				return
			}
			if werr != nil || j.Machine != tc.want || j.Script == "" {
				t.Errorf("Show = %+v, %v; want %s with its script", j, werr, tc.want)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	r := newRig(t)
	seedJobs(t, r)
	const web, db = "abcdef0100000000000000000000000a", "abcdef0100000000000000000000000b"
	if _, werr := r.q.Cancel(alice, &wire.JobArgs{ID: "abcdef01"}); werr == nil || werr.Code != wire.CodeConflict {
		t.Errorf("cancel by an ambiguous prefix: %v", werr)
	}
	if _, werr := r.q.Cancel(alice, &wire.JobArgs{ID: "123456"}); werr == nil || werr.Code != wire.CodeNotFound {
		t.Errorf("cancel outside the scope: %v", werr)
	}
	j, werr := r.q.Cancel(alice, &wire.JobArgs{ID: web})
	if werr != nil || j.State != store.JobCancelled || j.Broker != "eu-1" || j.Error != "cancelled by alice" {
		t.Fatalf("Cancel = %+v, %v", j, werr)
	}
	if keys := r.replicatedKeys(); len(keys) != 1 || keys[0] != (store.Key{Kind: store.KindJob, ID: web}) {
		t.Errorf("replicated %v", keys)
	}
	if es, _ := r.st.AuditLog(10, nil); len(es) != 1 || es[0].Event != "job.cancelled" || es[0].Machine != "acme/web" {
		t.Errorf("audited %+v", es)
	}
	if _, werr := r.q.Cancel(alice, &wire.JobArgs{ID: web}); werr == nil || werr.Code != wire.CodeConflict ||
		!strings.Contains(werr.Message, "only a queued job") {
		t.Errorf("second cancel: %v, want conflict", werr)
	}
	// A running job cannot be cancelled either.
	if _, err := r.st.UpdateJob(db, func(j *store.JobRecord) error {
		j.State, j.Result = store.JobRunning, &store.JobResult{Session: "sess-db"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, werr := r.q.Cancel(alice, &wire.JobArgs{ID: db}); werr == nil || werr.Code != wire.CodeConflict {
		t.Errorf("cancelling a running job: %v, want conflict", werr)
	}
	if len(r.replicatedKeys()) != 1 {
		t.Errorf("refused cancels replicated: %v", r.replicatedKeys())
	}
}

func TestList(t *testing.T) {
	r := newRig(t)
	seedJobs(t, r)
	const db = "abcdef0100000000000000000000000b"
	if _, err := r.st.UpdateJob(db, func(j *store.JobRecord) error {
		j.State, j.Result = store.JobRunning, &store.JobResult{Session: "sess-db", Output: "partial"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r.q.deps.Sessions = sessions{"id-acme-db/sess-db": true}
	tests := []struct {
		desc string
		tech *wire.Technician
		args wire.QueueListArgs
		want []string // "machine state", oldest first
	}{
		{"everything in scope", alice, wire.QueueListArgs{}, []string{"acme/web queued", "acme/db waiting-for-consent"}},
		{"admin", admin, wire.QueueListArgs{}, []string{"acme/web queued", "acme/db waiting-for-consent", "beta/web queued"}},
		{"state", admin, wire.QueueListArgs{State: store.JobQueued}, []string{"acme/web queued", "beta/web queued"}},
		{"waiting-for-consent is a state", admin, wire.QueueListArgs{State: "waiting-for-consent"}, []string{"acme/db waiting-for-consent"}},
		{"running shows as waiting", admin, wire.QueueListArgs{State: store.JobRunning}, nil},
		{"bare machine name", admin, wire.QueueListArgs{Machine: "web"}, []string{"acme/web queued", "beta/web queued"}},
		{"client/name", admin, wire.QueueListArgs{Machine: "beta/web"}, []string{"beta/web queued"}},
		{"machine ID", admin, wire.QueueListArgs{Machine: "id-acme-db"}, []string{"acme/db waiting-for-consent"}},
		{"machine outside the scope", alice, wire.QueueListArgs{Machine: "beta/web"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			js, werr := r.q.List(tc.tech, &tc.args)
			if werr != nil {
				t.Fatal(werr)
			}
			var got []string
			for _, j := range js {
				got = append(got, j.Machine+" "+j.State)
				if j.Script != "" || j.Output != "" {
					t.Errorf("listing carries script %q, output %q", j.Script, j.Output)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Show tells the same, with the output so far.
	if j, werr := r.q.Show(alice, &wire.JobArgs{ID: db}); werr != nil || j.State != "waiting-for-consent" || j.Output != "partial" {
		t.Errorf("Show = %+v, %v", j, werr)
	}
	// Once the person answered, it is running again.
	r.q.deps.Sessions = sessions{}
	if j, _ := r.q.Show(alice, &wire.JobArgs{ID: db}); j.State != store.JobRunning {
		t.Errorf("state %s once nothing waits, want running", j.State)
	}
}

// TestWantsCheckIn: work waiting for a machine wants a check-in made
// since its bridge opened.
func TestWantsCheckIn(t *testing.T) {
	r := newRig(t)
	checkedAt := time.Now()
	ci := &wire.CheckIn{MachineID: "id-acme-web", Seq: 1, Reason: wire.ReasonInterval, Snapshot: fleettest.Snapshot("web")}
	if _, err := r.st.CheckIn(ci, checkedAt); err != nil {
		t.Fatal(err)
	}
	if _, werr := r.q.Add(admin, args(wire.ModeInteractive, "acme/web", "acme/db")); werr != nil {
		t.Fatal(werr)
	}
	rc := reach{since: map[string]time.Time{}}
	r.q.deps.Reach = rc
	if r.q.WantsCheckIn("id-acme-web") {
		t.Error("wants a check-in before the dispatcher looked at the jobs")
	}
	if _, err := r.q.open(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc  string
		id    string
		since time.Time // zero: not bridged here
		want  bool
	}{
		{"not bridged here", "id-acme-web", time.Time{}, false},
		{"checked in since the bridge opened", "id-acme-web", checkedAt.Add(-time.Minute), false},
		{"bridge reopened since the check-in", "id-acme-web", checkedAt.Add(time.Minute), true},
		{"never checked in", "id-acme-db", checkedAt, true},
		{"no work", "id-beta-web", checkedAt, false},
	}
	for _, tc := range tests {
		clear(rc.since)
		if !tc.since.IsZero() {
			rc.since[tc.id] = tc.since
		}
		if got := r.q.WantsCheckIn(tc.id); got != tc.want {
			t.Errorf("%s: WantsCheckIn(%s) = %v, want %v", tc.desc, tc.id, got, tc.want)
		}
	}
	// Work that ended wants nothing.
	js, _ := r.st.Jobs(nil)
	for _, j := range js {
		if _, werr := r.q.Cancel(admin, &wire.JobArgs{ID: j.ID}); werr != nil {
			t.Fatal(werr)
		}
	}
	if _, err := r.q.open(); err != nil {
		t.Fatal(err)
	}
	rc.since["id-acme-db"] = checkedAt
	if r.q.WantsCheckIn("id-acme-db") {
		t.Error("cancelled work still wants a check-in")
	}
}
