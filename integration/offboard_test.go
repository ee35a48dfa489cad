package integration

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// revokeBound is how long the tests wait for a revocation to reach every
// broker: far above the 2 s the README promises, so a slow machine does
// not fail them; each wait logs what it measured.
const revokeBound = 15 * time.Second

// techOn returns a home for c's technician that talks to broker b: its
// key, with b as the login broker and no others to fail over to, so each
// broker of a cluster can be asked on its own.
func techOn(t *testing.T, c *tech, b *broker) *tech {
	t.Helper()
	home := filepath.Join(filepath.Dir(c.home), "tech-"+c.name+"-on-"+b.name)
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(c.home, "technician.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "technician.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]json.RawMessage
	raw, err := os.ReadFile(filepath.Join(c.home, "config.json"))
	if err != nil || json.Unmarshal(raw, &cfg) != nil {
		t.Fatalf("read %s's config: %v", c.name, err)
	}
	info, err := os.ReadFile(b.infoPath())
	if err != nil {
		t.Fatal(err)
	}
	cfg["broker"] = info
	delete(cfg, "brokers")
	out, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(home, "config.json"), out, 0o600); err != nil {
		t.Fatal(err)
	}
	return &tech{t: t, name: c.name + "@" + b.name, home: home}
}

// waitAll polls cond on each of techs until it holds for all, and returns
// how long that took.
func waitAll(t *testing.T, what string, techs []*tech, cond func(c *tech) (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for _, c := range techs {
		poll(t, revokeBound-time.Since(start), what+" on "+c.name, func() (bool, string) { return cond(c) })
	}
	took := time.Since(start)
	t.Logf("%s: on all %d brokers after %v", what, len(techs), took.Round(time.Millisecond))
	return took
}

// TestOffboarding runs each revocation on a three-broker cluster with the
// real binaries, ordering it on one broker and checking it on all three:
// a disabled technician's next request fails on every broker, its open
// terminal ends, its console event stream ends, and a session it was
// granted before but not yet opened (waiting for consent) does not open;
// enabling it restores it; removing it refuses its key. A revoked token
// enrols nobody. A removed machine's agent is refused and logs why, and
// leaves every broker's fleet. A client with machines is removed only with
// --force. Each is in the audit log with who did it.
func TestOffboarding(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	bs := startCluster(t, base, gossipKey(t, base, "gossip.key"), 3, 300*time.Millisecond)
	admin := bs[0].admin(base)
	admin.ok("clients", "create", "acme")
	pc := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "pc", "linux-ready.json")
	pc.start()
	gated := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "gated", "linux-ready.json")
	gated.extra = []string{"--consent", "session", "--consent-timeout", "1m"}
	gated.start()
	waitOnline(t, admin, 30*time.Second, pc, gated)

	var added wire.TechnicianResult
	if err := json.Unmarshal([]byte(admin.ok("technicians", "add", "t1", "--clients", "acme",
		"--modes", "read-only,interactive", "--json")), &added); err != nil {
		t.Fatal(err)
	}
	t1 := newTech(t, base, "t1")
	t1.ok("login", "--credential", added.LoginToken)
	var on []*tech
	for _, b := range bs {
		on = append(on, techOn(t, t1, b))
	}
	ops := bs[1].admin(base) // every revocation is ordered on eu-2

	// What t1 holds open on eu-1: a terminal, a console event stream, and
	// a session waiting for the consent of the person at "gated".
	// An *os.File, so the terminal reads it directly: exec's copying
	// goroutine for any other reader would keep Wait from returning.
	termIn, termW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer termW.Close()
	defer termIn.Close()
	terminal := startProcIn(t, "t1 terminal", []string{"READYMESH_HOME=" + on[0].home, "READYMESH_SESSION_ADDR=127.0.0.1:0"},
		termIn, bins.meshctl, "connect", pc.full(), "--mode", "interactive")
	go io.WriteString(termW, "echo ready-$((40+2))\n")
	poll(t, 30*time.Second, "t1's terminal answers", func() (bool, string) {
		out := terminal.stdout.String()
		return strings.Contains(out, "ready-42"), out
	})
	stream := openEvents(t, bs[0], on[0])
	waiting := startProc(t, "t1 exec waiting for consent", []string{"READYMESH_HOME=" + on[0].home, "READYMESH_SESSION_ADDR=127.0.0.1:0"},
		bins.meshctl, "exec", gated.full(), "--mode", "interactive", "--", "touch", filepath.Join(base, "ran-after-revocation"))
	req := gated.waitRequest(t)

	t.Run("disable", func(t *testing.T) {
		ops.ok("technicians", "disable", "t1")
		waitAll(t, "the disabled technician's machines refused", on, func(c *tech) (bool, string) {
			r := c.run("machines")
			return r.err != nil && strings.Contains(r.stderr, "disabled by admin"), r.stderr
		})
		if err := terminal.wait(t, revokeBound); err == nil {
			t.Error("the terminal of a disabled technician exited 0")
		}
		stream.waitEnd(t)
		// The person at the machine approves the request that was
		// waiting: the revoked technician's session must not open.
		runCmd(t, cmdTimeout, nil, bins.sessiond, "approve", "--state", gated.dir, req.ID)
		if err := waiting.wait(t, revokeBound); err == nil {
			t.Error("the exec a disabled technician started before its revocation succeeded")
		}
		if _, err := os.Stat(filepath.Join(base, "ran-after-revocation")); err == nil {
			t.Error("a command granted before the revocation ran after it")
		}
		if !strings.Contains(ops.ok("technicians", "ls"), "disabled by admin") {
			t.Error("technicians ls does not show t1 disabled")
		}
	})
	t.Run("enable", func(t *testing.T) {
		ops.ok("technicians", "enable", "t1")
		waitAll(t, "the enabled technician served again", on, func(c *tech) (bool, string) {
			r := c.run("machines", "--json")
			return r.err == nil, r.stderr
		})
	})
	t.Run("remove", func(t *testing.T) {
		ops.ok("technicians", "remove", "t1")
		waitAll(t, "the removed technician refused", on, func(c *tech) (bool, string) {
			r := c.run("machines")
			return r.err != nil, r.stderr
		})
	})
	t.Run("revoke token", func(t *testing.T) {
		tok := admin.token("acme", 5, time.Hour)
		var toks []wire.TokenInfo
		if err := json.Unmarshal([]byte(ops.ok("tokens", "ls", "--json")), &toks); err != nil {
			t.Fatal(err)
		}
		var id string
		for _, x := range toks {
			if x.UsesLeft == 5 {
				id = x.ID
			}
		}
		if id == "" {
			t.Fatalf("tokens ls does not list the new token: %+v", toks)
		}
		ops.ok("tokens", "revoke", id)
		// The token carries eu-1's address: enrolment goes there.
		poll(t, revokeBound, "the revoked token refused on eu-1", func() (bool, string) {
			r := tryEnroll(t, tok.Token, "late", freshDir(base, "agent-late"))
			return r.err != nil && strings.Contains(r.stderr, "token"), r.stderr
		})
	})
	t.Run("remove machine", func(t *testing.T) {
		ops.ok("machines", "remove", pc.full())
		poll(t, revokeBound, "the removed agent says why", func() (bool, string) {
			log := pc.proc.stderr.String()
			return strings.Contains(log, "this machine was removed from the fleet") &&
				strings.Contains(log, "pc was removed from acme by admin at"), pc.proc.stderr.tail(5)
		})
		for _, b := range bs {
			c := b.admin(base)
			poll(t, revokeBound, "the removed machine gone from "+b.name, func() (bool, string) {
				_, listed := cardOf(c.machines(), pc.id)
				return !listed, ""
			})
		}
	})
	t.Run("remove client", func(t *testing.T) {
		if errOut := ops.fails("clients", "remove", "acme"); !strings.Contains(errOut, "has 1 machine(s)") {
			t.Errorf("clients remove without --force: %q", errOut)
		}
		ops.ok("clients", "remove", "acme", "--force")
		if out := ops.ok("clients", "ls"); strings.Contains(out, "acme") {
			t.Errorf("acme still listed: %q", out)
		}
	})
	t.Run("audit", func(t *testing.T) {
		var entries []wire.AuditEntry
		if err := json.Unmarshal([]byte(ops.ok("audit", "--limit", "1000", "--json")), &entries); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{wire.AuditTechnicianDisabled: false, wire.AuditTechnicianEnabled: false,
			wire.AuditTechnicianRemoved: false, wire.AuditTokenRevoked: false, wire.AuditMachineRemoved: false,
			wire.AuditClientRemoved: false}
		for _, e := range entries {
			if _, ok := want[e.Event]; ok && e.Technician == "admin" {
				want[e.Event] = true
			}
		}
		for ev, seen := range want {
			if !seen {
				t.Errorf("no %s entry by admin in eu-2's audit log", ev)
			}
		}
	})
	t.Run("rotate admin credential", func(t *testing.T) {
		rotateAdminCredential(t, base, bs, admin, ops)
	})
}

// rotateAdminCredential rotates eu-1's admin credential while it serves:
// every admin key, logged in on any broker, is refused on all three and
// an admin's console stream ends; the old credential logs in nowhere and
// the new one does. Then eu-3's credential is rotated while eu-3 is
// stopped: once it runs again, its old credential is refused and the
// keys that logged in since the first rotation are signed out everywhere.
// Both rotations are in the audit log with the local account that ran
// them.
func rotateAdminCredential(t *testing.T, base string, bs []*broker, admins ...*tech) {
	third := bs[2].admin(base)
	stream := openEvents(t, bs[2], third)
	admins = append(admins, third)
	old, err := os.ReadFile(bs[0].credential())
	if err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, cmdTimeout, nil, bins.broker, "admin-credential", "--rotate", "--data", bs[0].dir)
	if r.err != nil || !strings.Contains(r.stdout, "by the running broker") || !strings.Contains(r.stdout, "signed out") {
		t.Fatalf("broker admin-credential --rotate: %v", r)
	}
	t.Logf("broker admin-credential --rotate: %s", strings.TrimSpace(r.stdout))
	waitAll(t, "every admin key refused after the rotation", admins, func(c *tech) (bool, string) {
		r := c.run("machines")
		return r.err != nil, r.stderr
	})
	stream.waitEnd(t)
	oldCred := filepath.Join(base, "old-eu-1.credential")
	if err := os.WriteFile(oldCred, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := newTech(t, base, "with-old-credential").run("login", "--credential", oldCred); r.err == nil {
		t.Error("the rotated credential still logs in")
	}
	fresh := newTech(t, base, "admin-after-rotation")
	fresh.ok("login", "--credential", bs[0].credential())
	fresh.ok("machines")

	// eu-3 stopped: the rotation goes into its store file.
	third3 := filepath.Join(base, "old-eu-3.credential")
	if raw, err := os.ReadFile(bs[2].credential()); err != nil || os.WriteFile(third3, raw, 0o600) != nil {
		t.Fatalf("keep eu-3's credential: %v", err)
	}
	bs[2].stop()
	r = runCmd(t, cmdTimeout, nil, bins.broker, "admin-credential", "--rotate", "--data", bs[2].dir)
	if r.err != nil || !strings.Contains(r.stdout, "stopped broker's store") {
		t.Fatalf("broker admin-credential --rotate on a stopped broker: %v", r)
	}
	bs[2].restart()
	waitAll(t, "the key logged in after the first rotation refused after the offline one", []*tech{fresh}, func(c *tech) (bool, string) {
		r := c.run("machines")
		return r.err != nil, r.stderr
	})
	if r := newTech(t, base, "with-old-eu-3").run("login", "--credential", third3); r.err == nil {
		t.Error("eu-3's rotated credential still logs in")
	}
	last := newTech(t, base, "admin-after-offline-rotation")
	last.ok("login", "--credential", bs[2].credential())
	var entries []wire.AuditEntry
	if err := json.Unmarshal([]byte(last.ok("audit", "--limit", "1000", "--json")), &entries); err != nil {
		t.Fatal(err)
	}
	rotations := 0
	for _, e := range entries {
		if e.Event == wire.AuditCredentialRotated && strings.HasPrefix(e.Technician, "local-") {
			rotations++
		}
	}
	if rotations == 0 {
		t.Errorf("no %s entry naming a local account in eu-3's audit log", wire.AuditCredentialRotated)
	}
}

// eventStream is a console event stream read line by line.
type eventStream struct {
	lines chan string
	body  io.Closer
}

// openEvents signs c in to b's web console and opens its event stream.
func openEvents(t *testing.T, b *broker, c *tech) *eventStream {
	t.Helper()
	hc, err := b.consoleClient(c)
	if err != nil {
		t.Fatal(err)
	}
	hc.Timeout = 0
	resp, err := hc.Get("http://" + b.info.HTTP + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET /api/events: %s", resp.Status)
	}
	s := &eventStream{lines: make(chan string, 1024), body: resp.Body}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default: // the test reads only the end
			}
		}
	}()
	return s
}

// waitEnd waits for the stream to say signed-out and end.
func (s *eventStream) waitEnd(t *testing.T) {
	t.Helper()
	deadline := time.After(revokeBound)
	signedOut := false
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				if !signedOut {
					t.Error("the console stream ended without saying signed-out")
				}
				return
			}
			signedOut = signedOut || line == "event: signed-out"
		case <-deadline:
			t.Errorf("the console stream of a revoked technician is still open after %v", revokeBound)
			return
		}
	}
}
