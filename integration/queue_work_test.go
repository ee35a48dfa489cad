package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// jobs lists the queue as JSON.
func (c *tech) jobs(args ...string) []wire.Job {
	c.t.Helper()
	var js []wire.Job
	if err := json.Unmarshal([]byte(c.ok(append([]string{"queue", "ls", "--json"}, args...)...)), &js); err != nil {
		c.t.Fatal(err)
	}
	return js
}

func jobFor(js []wire.Job, machine string) (wire.Job, bool) {
	for _, j := range js {
		if j.Machine == machine {
			return j, true
		}
	}
	return wire.Job{}, false
}

// TestQueuedWork queues a script for the three machines with one pending
// update, of which one is online: it runs at once, the others when they
// come back, each exactly once; expired and cancelled jobs never run; a
// job that requires consent waits for the person at the machine.
func TestQueuedWork(t *testing.T) {
	base, admin, online := oneAgent(t, "queue", "windows-ready.json")
	tok := admin.token("acme", 4, time.Hour).Token
	later := []*agent{enroll(t, base, tok, "pc-02", "windows-ready.json"), enroll(t, base, tok, "pc-03", "windows-ready.json")}
	other := enroll(t, base, tok, "linux-01", "linux-ready.json")
	for _, a := range append(later, other) {
		a.start()
		waitOnline(t, admin, 20*time.Second, a)
		if a != other {
			a.stop()
		}
	}
	script := filepath.Join(base, "fix.sh")
	os.WriteFile(script, []byte("echo job-ran\nexit 0\n"), 0o600)
	var queued []wire.Job
	json.Unmarshal([]byte(admin.ok("queue", "add", "--pending-update", "KB5034441", "--script", script, "--json")), &queued)
	if len(queued) != 3 {
		t.Fatalf("queued %d jobs, want 3 (the machines with KB5034441): %+v", len(queued), queued)
	}
	done := func(machine string) (bool, string) {
		j, ok := jobFor(admin.jobs(), machine)
		return ok && j.State == "done" && j.ExitCode != nil && *j.ExitCode == 0, fmt.Sprintf("%+v", j)
	}
	poll(t, 20*time.Second, "the online machine's job done", func() (bool, string) { return done(online.full()) })
	for _, a := range later {
		if j, _ := jobFor(admin.jobs(), a.full()); j.State != "queued" {
			t.Errorf("%s's job is %s while it is offline, want queued", a.name, j.State)
		}
	}
	for _, a := range later {
		a.start()
		poll(t, 20*time.Second, a.name+"'s job done after it came back", func() (bool, string) { return done(a.full()) })
	}
	j, _ := jobFor(admin.jobs(), online.full())
	if out := admin.ok("queue", "show", j.ID); !strings.Contains(out, "job-ran") {
		t.Errorf("queue show: %q", out)
	}
	// Exactly once: restarting the agents does not run anything again.
	for _, a := range append(later, online) {
		a.stop()
		a.start()
		waitOnline(t, admin, 20*time.Second, a)
	}
	time.Sleep(1500 * time.Millisecond) // the dispatcher's next rounds
	for _, a := range append(later, online) {
		if n := strings.Count(a.proc.stderr.String(), "queued job ran"); n != 0 {
			t.Errorf("%s ran a queued job again after a restart (%d times)", a.name, n)
		}
	}

	// Expired and cancelled jobs never run.
	later[0].stop()
	later[1].stop()
	var x []wire.Job
	json.Unmarshal([]byte(admin.ok("queue", "add", "--machine", later[0].full(), "--script", script, "--expires", "1s", "--json")), &x)
	json.Unmarshal([]byte(admin.ok("queue", "add", "--machine", later[1].full(), "--script", script, "--json")), &x)
	cancelID := x[0].ID
	admin.ok("queue", "cancel", cancelID[:10])
	if msg := admin.fails("queue", "cancel", cancelID[:10]); !strings.Contains(msg, "only a queued job can be cancelled") {
		t.Errorf("cancel twice: %q", msg)
	}
	time.Sleep(1200 * time.Millisecond)
	later[0].start()
	later[1].start()
	poll(t, 20*time.Second, "the expired job marked expired", func() (bool, string) {
		for _, j := range admin.jobs("--machine", later[0].full()) {
			if j.State == "expired" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", admin.jobs("--machine", later[0].full()))
	})
	time.Sleep(1500 * time.Millisecond)
	for _, a := range later {
		if strings.Contains(a.proc.stderr.String(), "queued job ran") {
			t.Errorf("%s ran an expired or cancelled job", a.name)
		}
	}

	// A job that requires consent waits for the person at the machine.
	json.Unmarshal([]byte(admin.ok("queue", "add", "--machine", online.full(), "--script", script, "--requires-consent", "--json")), &x)
	q := online.waitRequest(t)
	poll(t, 10*time.Second, "the job shows waiting-for-consent", func() (bool, string) {
		j, _ := jobFor(admin.jobs("--state", "waiting-for-consent"), online.full())
		return j.ID == x[0].ID, fmt.Sprintf("%+v", admin.jobs("--machine", online.full()))
	})
	runCmd(t, cmdTimeout, nil, bins.sessiond, "approve", "--state", online.dir, q.ID)
	poll(t, 20*time.Second, "the approved job done", func() (bool, string) {
		var j wire.Job
		json.Unmarshal([]byte(admin.ok("queue", "show", x[0].ID, "--json")), &j)
		return j.State == "done", j.State
	})
}
