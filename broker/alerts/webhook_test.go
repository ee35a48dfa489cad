package alerts_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 5 * time.Second

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// fleet is the stored machines, which a test may change while alerts
// read them.
type fleet struct {
	mu sync.Mutex
	ms []store.Machine // mu guards
}

func (f *fleet) Machines() []store.Machine {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ms)
}

// checkIn marks machine i checked in now.
func (f *fleet) checkIn(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ms[i].LastCheckIn = &store.CheckInMeta{Seq: 1, At: now}
}

// offline: no machine is reachable.
type offline struct{}

func (offline) Reach(m *store.Machine) wire.Reachability {
	return wire.Reachability{LastSeen: m.LastSeen}
}

// members is the cluster's membership, which a test may change.
type members struct {
	local string

	mu sync.Mutex
	ms []cluster.Member // mu guards
}

func (m *members) Members() []cluster.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.ms)
}

func (m *members) LocalName() string { return m.local }

func (m *members) setState(name, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.ms {
		if m.ms[i].Name == name {
			m.ms[i].State = state
		}
	}
}

// clock is the fake time alerts evaluate at; it counts evaluations.
type clock struct{ calls atomic.Int64 }

func (c *clock) now() time.Time { c.calls.Add(1); return now }

// evaluations waits until n more evaluations than at start have run.
func (c *clock) evaluations(t *testing.T, n int64) {
	t.Helper()
	want := c.calls.Load() + n
	waitFor(t, "evaluations", func() bool { return c.calls.Load() >= want })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, waitTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hook is a webhook receiver on 127.0.0.1. It answers the first failures
// requests with 503.
type hook struct {
	url      string
	events   chan wire.AlertEvent
	failures atomic.Int32
	bad      atomic.Value // a string saying what was wrong with a request
}

func newHook(t *testing.T) *hook {
	h := &hook{events: make(chan wire.AlertEvent, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			h.bad.Store(r.Method + " " + r.Header.Get("Content-Type"))
		}
		if h.failures.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var e wire.AlertEvent
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			h.bad.Store("body: " + err.Error())
		}
		h.events <- e
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// next returns the next event posted.
func (h *hook) next(t *testing.T) wire.AlertEvent {
	t.Helper()
	select {
	case e := <-h.events:
		if bad, _ := h.bad.Load().(string); bad != "" {
			t.Errorf("bad request: %s", bad)
		}
		return e
	case <-time.After(waitTimeout):
		t.Fatalf("nothing posted within %v", waitTimeout)
		return wire.AlertEvent{}
	}
}

// run starts a's Run and stops it when the test ends.
func run(t *testing.T, a *alerts.Alerts) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("Run did not return after its context ended")
		}
	})
}

// newcomer is a machine enrolled two hours ago that never checked in:
// its readiness alert is open from the first evaluation.
func newcomer() store.Machine {
	return store.Machine{ID: "id-new", Client: "acme", Name: "new", EnrolledAt: now.Add(-2 * time.Hour), AgentVersion: "1.0.0",
		Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}}
}

func config(h *hook, c *clock) alerts.Config {
	return alerts.Config{Every: 5 * time.Millisecond, Webhook: h.url, Name: "eu-1", Now: c.now}
}

// TestWebhookOnce: an alert that opens is posted once, with the broker's
// name, however many evaluations find it open; its resolution next.
func TestWebhookOnce(t *testing.T) {
	h, c := newHook(t), &clock{}
	f := &fleet{ms: []store.Machine{newcomer()}}
	a := alerts.New(config(h, c), f, offline{}, nil)
	run(t, a)
	e := h.next(t)
	if e.Event != "opened" || e.Broker != "eu-1" || e.Alert.Kind != wire.AlertNeverCheckedIn || e.Alert.Machine != "acme/new" ||
		e.Alert.Client != "acme" || e.Alert.Resolved != nil {
		t.Errorf("first event %+v", e)
	}
	c.evaluations(t, 5)
	f.checkIn(0)
	if e := h.next(t); e.Event != "resolved" || e.Alert.ID != "id-new/"+wire.AlertNeverCheckedIn || e.Alert.Resolved == nil || e.Broker != "eu-1" {
		t.Errorf("event after the check-in %+v; want the alert resolved, and no second opening", e)
	}
	if got := a.List(&wire.Technician{Admin: true}); len(got) != 0 {
		t.Errorf("open alerts after the check-in: %+v", got)
	}
}

// TestWebhookNotLeader: a broker with an alive member of a smaller name
// lists alerts but does not post them; once that member is dead it
// posts.
func TestWebhookNotLeader(t *testing.T) {
	h, c := newHook(t), &clock{}
	f := &fleet{ms: []store.Machine{newcomer()}}
	m := &members{local: "b", ms: []cluster.Member{{Name: "a", State: cluster.StateAlive}, {Name: "b", State: cluster.StateAlive},
		{Name: "0-left", State: cluster.StateLeft}}}
	a := alerts.New(config(h, c), f, offline{}, m)
	run(t, a)
	waitFor(t, "open alert", func() bool { return len(a.List(&wire.Technician{Admin: true})) == 1 })
	c.evaluations(t, 5)
	select {
	case e := <-h.events:
		t.Fatalf("a broker that does not lead posted %+v", e)
	default:
	}
	m.setState("a", cluster.StateDead)
	c.evaluations(t, 2)
	f.checkIn(0)
	if e := h.next(t); e.Event != "resolved" {
		t.Errorf("first event posted %+v; want the resolution (the opening was not this broker's to post)", e)
	}
}

// TestWebhookRetries: a failed post is retried after a second.
func TestWebhookRetries(t *testing.T) {
	h, c := newHook(t), &clock{}
	h.failures.Store(1)
	f := &fleet{ms: []store.Machine{newcomer()}}
	run(t, alerts.New(config(h, c), f, offline{}, nil))
	start := time.Now()
	if e := h.next(t); e.Event != "opened" {
		t.Errorf("event %+v", e)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("delivered after %v, before the retry's backoff", d)
	}
}

// TestList: readiness alerts first, then reachability, each by machine
// and kind, within the technician's scope.
func TestList(t *testing.T) {
	seen := now.Add(-time.Hour)
	f := &fleet{ms: []store.Machine{
		{ID: "id-alpha", Client: "acme", Name: "alpha", LastSeen: &seen, AgentVersion: "1.0.0",
			LastCheckIn: &store.CheckInMeta{Seq: 1, At: now}, Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}},
		{ID: "id-zed", Client: "beta", Name: "zed", LastSeen: &seen, AgentVersion: "1.0.0",
			LastCheckIn: &store.CheckInMeta{Seq: 1, At: now.Add(-4 * time.Hour)}, Runtime: wire.RuntimeConfig{CheckInIntervalSec: 3600}},
		newcomer(),
	}}
	c := &clock{}
	a := alerts.New(alerts.Config{Every: 5 * time.Millisecond, Now: c.now}, f, offline{}, nil)
	run(t, a)
	admin := &wire.Technician{Admin: true}
	waitFor(t, "four open alerts", func() bool { return len(a.List(admin)) == 4 })
	tests := []struct {
		tech *wire.Technician
		want []string
	}{
		{admin, []string{"acme/new " + wire.AlertNeverCheckedIn, "beta/zed " + wire.AlertCheckInOverdue,
			"acme/alpha " + wire.AlertOffline, "beta/zed " + wire.AlertOffline}},
		{&wire.Technician{Name: "alice", Clients: []string{"acme"}}, []string{"acme/new " + wire.AlertNeverCheckedIn, "acme/alpha " + wire.AlertOffline}},
		{&wire.Technician{Name: "nobody"}, nil},
	}
	for _, tc := range tests {
		var got []string
		for _, al := range a.List(tc.tech) {
			got = append(got, al.Machine+" "+al.Kind)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%s) = %v, want %v", tc.tech.Name, got, tc.want)
		}
	}
}
