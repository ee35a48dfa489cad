package console

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/rollout"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// rolloutOps answers the rollout operations from a real rollout room, as
// the broker's dispatch does: the arguments encoded and decoded (and so
// validated) on the way, the room applying the technician's scopes, and
// no other operation known.
type rolloutOps struct {
	room *rollout.Room

	mu  sync.Mutex
	ops []string // mu guards; the operations run, in order
}

func (o *rolloutOps) Do(_ context.Context, t *wire.Technician, _ peer.ID, op string, args any) (any, *wire.Error) {
	o.mu.Lock()
	o.ops = append(o.ops, op)
	o.mu.Unlock()
	raw, err := json.Marshal(args)
	if err != nil || args == nil {
		raw = nil
	}
	switch op {
	case wire.OpRolloutList:
		return o.room.List(t)
	case wire.OpRolloutStatus:
		var a wire.RolloutIDArgs
		if werr := serve.Args(op, raw, &a); werr != nil {
			return nil, werr
		}
		return o.room.Status(t, &a)
	}
	return nil, wire.Errorf(wire.CodeBadRequest, "unknown operation %q", op)
}

func (o *rolloutOps) ran() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.ops)
}

// oneRelease is a published release, as the releases room would hold it.
type oneRelease struct{ version string }

func (r oneRelease) Release(v string) (store.ReleaseRecord, bool, error) {
	if v != r.version {
		return store.ReleaseRecord{}, false, nil
	}
	raw, _ := json.Marshal(map[string]string{"format": "readymesh-release/1", "version": v})
	return store.ReleaseRecord{Version: v, Manifest: raw, PublishedBy: "admin", PublishedAt: time.Now()}, true, nil
}

// offline: no machine is online.
type offline struct{}

func (offline) Reach(*store.Machine) wire.Reachability { return wire.Reachability{} }

// rolloutRig is a console over a real store holding three machines, two
// of acme and one of globex, in one rollout of 0.3.0, and browsers signed
// in as the admin, as a technician of acme, and as one of initech (which
// has no machines).
type rolloutRig struct {
	base                string
	id                  string // the rollout's
	acme                []string
	admin, acmeT, other *http.Client
	ops                 *rolloutOps
}

func newRolloutRig(t *testing.T) *rolloutRig {
	t.Helper()
	st := fleettest.Open(t)
	now := time.Now()
	r := &rolloutRig{}
	for _, m := range []struct{ id, client string }{{"m-acme-1", "acme"}, {"m-acme-2", "acme"}, {"m-globex-1", "globex"}} {
		fleettest.Enrol(t, st, m.id, m.client, m.id, now)
		snap := fleettest.Snapshot(m.id)
		snap.AgentVersion = "0.2.0"
		if _, err := st.CheckIn(&wire.CheckIn{MachineID: m.id, Seq: 1, Reason: wire.ReasonEnroll, Snapshot: snap}, now); err != nil {
			t.Fatal(err)
		}
		if m.client == "acme" {
			r.acme = append(r.acme, m.id)
		}
	}
	if _, err := st.CreateClient("initech", now); err != nil {
		t.Fatal(err)
	}
	room := rollout.New(rollout.Config{Name: "eu-1"}, rollout.Deps{Store: st, Releases: oneRelease{"0.3.0"},
		Reach: offline{}, Audit: audit.New(st, nil, nil), Replicated: func(...store.Key) {}})
	started, werr := room.Start(&wire.Technician{Name: "admin", Admin: true}, &wire.RolloutArgs{Version: "0.3.0", All: true, CanaryPct: 50})
	if werr != nil {
		t.Fatal(werr)
	}
	r.id, r.ops = started.ID, &rolloutOps{room: room}

	c := New(Config{Name: "test"}, Deps{Ops: r.ops, Store: st, Audit: audit.New(st, nil, nil), Changes: NewChanges(),
		Refused: func(string, string) {}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Bounded(c.Handler(http.NewServeMux()), 5*time.Second), ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ln) })
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	r.base = "http://" + ln.Addr().String()
	if err := st.SetAdminHash(wire.HashSecret(wire.NewSecret()), now); err != nil {
		t.Fatal(err)
	}
	r.admin = r.signIn(t, c, st, nil)
	r.acmeT = r.signIn(t, c, st, &wire.Technician{Name: "t-acme", Clients: []string{"acme"}, Modes: []string{wire.ModeReadOnly}})
	r.other = r.signIn(t, c, st, &wire.Technician{Name: "t-initech", Clients: []string{"initech"}, Modes: []string{wire.ModeReadOnly}})
	return r
}

// signIn makes technician tech (nil: the admin) and returns a client
// signed in to the console as it.
func (r *rolloutRig) signIn(t *testing.T, c *Console, st *store.Store, tech *wire.Technician) *http.Client {
	t.Helper()
	now := time.Now()
	key := fleettest.PeerID(t).String()
	hash := ""
	if tech != nil {
		hash = wire.HashSecret(wire.NewSecret())
		if err := st.CreateTechnician(*tech, hash, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Login(hash, key, tech == nil, now); err != nil {
		t.Fatal(err)
	}
	code, werr := c.TestOnlyCode(key)
	if werr != nil {
		t.Fatal(werr)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	if status, raw := post(t, hc, r.base+"/api/login", "", map[string]string{"code": code}); status != http.StatusOK {
		t.Fatalf("sign in: %d %s", status, raw)
	}
	return hc
}

// getJSON gets path as hc and returns the status and the body.
func getJSON(t *testing.T, hc *http.Client, url string) (int, []byte) {
	t.Helper()
	res, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, raw
}

// machineIDs are the machines of a rollout, sorted.
func machineIDs(r wire.Rollout) []string {
	var ids []string
	for _, m := range r.Machines {
		ids = append(ids, m.MachineID)
	}
	slices.Sort(ids)
	return ids
}

func total(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// TestRolloutAPI: the console's rollout views run the rollout operations
// for the technician signed in, so each sees the rollouts and machines
// its clients hold and nothing else, and a bad ID is refused as the
// operation refuses it.
func TestRolloutAPI(t *testing.T) {
	r := newRolloutRig(t)
	all := []string{"m-acme-1", "m-acme-2", "m-globex-1"}
	for _, tc := range []struct {
		name     string
		hc       *http.Client
		path     string
		status   int
		machines []string // status: the machines shown; list: nil
		listed   int      // list: the rollouts listed
	}{
		{"admin lists", r.admin, "/api/rollouts", http.StatusOK, nil, 1},
		{"admin reads", r.admin, "/api/rollouts/" + r.id, http.StatusOK, all, 0},
		{"by the ID's first digits", r.admin, "/api/rollouts/" + r.id[:6], http.StatusOK, all, 0},
		{"a technician lists", r.acmeT, "/api/rollouts", http.StatusOK, nil, 1},
		{"a technician reads its clients' machines", r.acmeT, "/api/rollouts/" + r.id, http.StatusOK, r.acme, 0},
		{"no machine of its clients: none listed", r.other, "/api/rollouts", http.StatusOK, nil, 0},
		{"no machine of its clients: not found", r.other, "/api/rollouts/" + r.id, http.StatusNotFound, nil, 0},
		{"an unknown rollout", r.admin, "/api/rollouts/ffffffffffff", http.StatusNotFound, nil, 0},
		{"an ID too short", r.admin, "/api/rollouts/abc", http.StatusBadRequest, nil, 0},
		{"an ID too long", r.admin, "/api/rollouts/" + r.id + r.id + r.id, http.StatusBadRequest, nil, 0},
		{"signed out", http.DefaultClient, "/api/rollouts/" + r.id, http.StatusUnauthorized, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := getJSON(t, tc.hc, r.base+tc.path)
			if status != tc.status {
				t.Fatalf("GET %s: %d %s, want %d", tc.path, status, raw, tc.status)
			}
			if status != http.StatusOK {
				var e struct{ Error *wire.Error }
				if json.Unmarshal(raw, &e) != nil || e.Error == nil || e.Error.Message == "" {
					t.Errorf("the refusal carries no error message: %s", raw)
				}
				return
			}
			if tc.machines == nil {
				var list []wire.Rollout
				if err := json.Unmarshal(raw, &list); err != nil {
					t.Fatalf("%v: %s", err, raw)
				}
				if len(list) != tc.listed {
					t.Fatalf("%d rollouts listed, want %d: %s", len(list), tc.listed, raw)
				}
				for _, ro := range list {
					if ro.ID != r.id || len(ro.Machines) != 0 {
						t.Errorf("listed %s with %d machines, want %s without its machines", ro.ID, len(ro.Machines), r.id)
					}
				}
				return
			}
			var ro wire.Rollout
			if err := json.Unmarshal(raw, &ro); err != nil {
				t.Fatalf("%v: %s", err, raw)
			}
			if ro.ID != r.id || ro.Version != "0.3.0" || ro.State == "" {
				t.Errorf("rollout %s of %s, state %q; want %s of 0.3.0 with a state", ro.ID, ro.Version, ro.State, r.id)
			}
			if got := machineIDs(ro); !slices.Equal(got, tc.machines) {
				t.Errorf("machines %v, want %v", got, tc.machines)
			}
			if n := total(ro.Counts); n != len(tc.machines) {
				t.Errorf("counts %v add up to %d, want %d", ro.Counts, n, len(tc.machines))
			}
		})
	}
}

// TestRolloutAPIReadOnly: the console changes no rollout. A request to
// pause, resume or abort one, as an admin with the CSRF token, reaches
// no operation.
func TestRolloutAPIReadOnly(t *testing.T) {
	r := newRolloutRig(t)
	_, raw := getJSON(t, r.admin, r.base+"/api/me")
	var me struct{ CSRF string }
	if json.Unmarshal(raw, &me) != nil || me.CSRF == "" {
		t.Fatalf("me: %s", raw)
	}
	before := len(r.ops.ran())
	for _, verb := range []string{"pause", "resume", "abort"} {
		if status, raw := post(t, r.admin, r.base+"/api/rollouts/"+r.id+"/"+verb, me.CSRF, nil); status != http.StatusNotFound {
			t.Errorf("POST %s: %d %s, want 404", verb, status, raw)
		}
	}
	if status, raw := post(t, r.admin, r.base+"/api/rollouts/"+r.id, me.CSRF, nil); status == http.StatusOK {
		t.Errorf("POST to a rollout: %d %s", status, raw)
	}
	if ran := r.ops.ran()[before:]; len(ran) != 0 {
		t.Errorf("operations ran: %v", ran)
	}
}
