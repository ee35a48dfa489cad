package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// requests lists the agent's waiting consent requests.
func (a *agent) requests(t *testing.T) []wire.ConsentRequest {
	t.Helper()
	r := runCmd(t, cmdTimeout, nil, bins.sessiond, "requests", "--state", a.dir, "--json")
	if r.err != nil {
		t.Fatalf("sessiond requests: %v", r)
	}
	var qs []wire.ConsentRequest
	if err := json.Unmarshal([]byte(r.stdout), &qs); err != nil {
		t.Fatalf("sessiond requests --json: %v: %s", err, r.stdout)
	}
	return qs
}

// waitRequest waits for one consent request and returns it.
func (a *agent) waitRequest(t *testing.T) wire.ConsentRequest {
	t.Helper()
	var q wire.ConsentRequest
	poll(t, 15*time.Second, "a consent request at the machine", func() (bool, string) {
		qs := a.requests(t)
		if len(qs) == 1 {
			q = qs[0]
		}
		return len(qs) == 1, fmt.Sprintf("%+v", qs)
	})
	return q
}

// TestConsent follows sessions through the consent policies set by an
// admin technician: every session waits for the person at the machine
// (waiting-for-approval on the card), approval lets the command run,
// denial and silence refuse it with a clear message, and under the window
// policy one approval covers later sessions until it expires.
func TestConsent(t *testing.T) {
	_, admin, pc := oneAgent(t, "consent", "linux-ready.json", "--consent-timeout", "4s")
	env := []string{"READYMESH_HOME=" + admin.home, "READYMESH_SESSION_ADDR=127.0.0.1:0"}
	execProc := func(name, word string) *proc {
		return startProc(t, name, env, bins.meshctl, "exec", pc.full(), "--", "echo", word)
	}

	admin.ok("consent", pc.full(), "--policy", "session")
	poll(t, 10*time.Second, "readiness says consent is required", func() (bool, string) {
		c := admin.show(pc.full())
		return c.Readiness.State == wire.StateConsentRequired, c.Readiness.State
	})

	// Approve: the interactive session then runs a command through the PTY.
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() {
		out, _, code := admin.meshctlIn("echo approved-$((20+1))\nexit\n", "connect", pc.full(), "--mode", "interactive")
		done <- result{out, code}
	}()
	q := pc.waitRequest(t)
	if q.Technician != "admin" || q.Mode != wire.ModeInteractive {
		t.Errorf("request %+v", q)
	}
	poll(t, 10*time.Second, "card shows waiting-for-approval", func() (bool, string) {
		c := admin.show(pc.full())
		return c.Session != nil && c.Session.State == "waiting-for-approval", fmt.Sprintf("%+v", c.Session)
	})
	if r := runCmd(t, cmdTimeout, nil, bins.sessiond, "approve", "--state", pc.dir, q.ID); r.err != nil || !strings.Contains(r.stdout, "approved "+q.ID) {
		t.Fatalf("approve: %v", r)
	}
	if r := <-done; r.code != 0 || !strings.Contains(r.out, "approved-21") {
		t.Errorf("approved terminal: exit %d, output %q", r.code, r.out)
	}

	// Deny.
	p := execProc("exec (denied)", "denied-run")
	q = pc.waitRequest(t)
	if r := runCmd(t, cmdTimeout, nil, bins.sessiond, "deny", "--state", pc.dir, q.ID); r.err != nil {
		t.Fatalf("deny: %v", r)
	}
	if err := p.wait(t, 15*time.Second); err == nil || !strings.Contains(p.stderr.String(), "denied the session") {
		t.Errorf("denied exec: %v, stderr %q", err, p.stderr.String())
	}

	// Nobody answers.
	_, errOut, code := admin.meshctlIn("", "exec", pc.full(), "--", "echo", "silent-run")
	if code == 0 || !strings.Contains(errOut, "nobody at the machine answered") {
		t.Errorf("unanswered request: exit %d, stderr %q", code, errOut)
	}

	// Window: one approval covers the next session, until it expires.
	admin.ok("consent", pc.full(), "--policy", "window", "--window", "3s")
	p = execProc("exec (window)", "window-1")
	q = pc.waitRequest(t)
	runCmd(t, cmdTimeout, nil, bins.sessiond, "approve", "--state", pc.dir, "--all")
	p.waitOutput(t, "window-1", 15*time.Second)
	if out, _, code := admin.meshctlIn("", "exec", pc.full(), "--", "echo", "window-2"); out != "window-2\n" || code != 0 {
		t.Errorf("second session inside the window: %q exit %d", out, code)
	}
	poll(t, 10*time.Second, "readiness shows the approval and its expiry", func() (bool, string) {
		c := admin.show(pc.full())
		a := c.Readiness.Approval
		return a.ExpiresAt != nil && a.ApprovedBy != "", fmt.Sprintf("%+v", a)
	})
	time.Sleep(3500 * time.Millisecond)
	p = execProc("exec (expired)", "window-3")
	q = pc.waitRequest(t)
	runCmd(t, cmdTimeout, nil, bins.sessiond, "deny", "--state", pc.dir, q.ID)
	if err := p.wait(t, 15*time.Second); err == nil {
		t.Error("a session ran after its approval expired, without a new one")
	}
	admin.ok("consent", pc.full(), "--policy", "never")
	if out, _, _ := admin.meshctlIn("", "exec", pc.full(), "--", "echo", "free"); out != "free\n" {
		t.Errorf("policy never: %q", out)
	}

	// Every request, consent answer, start, end and policy change is in
	// the broker's audit log.
	poll(t, 10*time.Second, "the audit log holds the whole story", func() (bool, string) {
		var es []wire.AuditEntry
		json.Unmarshal([]byte(admin.ok("audit", "--machine", pc.full(), "--json")), &es)
		seen := map[string]bool{}
		for _, e := range es {
			switch {
			case e.Event == wire.AuditRefused && strings.Contains(e.Detail, "denied the session"):
				seen["denied"] = true
			case e.Event == wire.AuditRefused && strings.Contains(e.Detail, "nobody at the machine answered"):
				seen["timeout"] = true
			case e.Event == wire.AuditPolicy && strings.Contains(e.Detail, "policy window"):
				seen["policy"] = true
			default:
				seen[e.Event] = true
			}
		}
		for _, want := range []string{"denied", "timeout", "policy", wire.AuditGranted, wire.AuditStarted, wire.AuditEnded} {
			if !seen[want] {
				return false, "missing " + want + fmt.Sprintf(" in %d entries", len(es))
			}
		}
		return true, ""
	})
	t.Logf("audit:\n%s", admin.ok("audit", "--machine", pc.full(), "--limit", "12"))
}
