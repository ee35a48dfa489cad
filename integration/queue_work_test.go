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

// TestQueueStrict: a job planned before the machine rebooted warns, and
// with --strict refuses to run.
func TestQueueStrict(t *testing.T) {
	base, admin, _ := oneAgent(t, "strict", "linux-ready.json")
	pc := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "pc-reboots", "windows-ready.json")
	raw, _ := os.ReadFile(pc.fixture)
	pc.fixture = filepath.Join(base, "pc-reboots.json")
	os.WriteFile(pc.fixture, raw, 0o600)
	pc.start()
	waitOnline(t, admin, 20*time.Second, pc)
	pc.stop()
	script := filepath.Join(base, "s.sh")
	os.WriteFile(script, []byte("echo strict-ran\n"), 0o600)
	var strict, lax []wire.Job
	json.Unmarshal([]byte(admin.ok("queue", "add", "--machine", pc.full(), "--script", script, "--strict", "--json")), &strict)
	json.Unmarshal([]byte(admin.ok("queue", "add", "--machine", pc.full(), "--script", script, "--json")), &lax)
	// The machine reboots while away: another boot ID at its next check-in.
	os.WriteFile(pc.fixture, []byte(strings.Replace(string(raw), "6d1f3a52-93f0-4c1e-a0a4-2b7c5d9e8f10", "0e0e0e0e-93f0-4c1e-a0a4-2b7c5d9e8f10", 1)), 0o600)
	pc.start()
	show := func(id string) wire.Job {
		var j wire.Job
		json.Unmarshal([]byte(admin.ok("queue", "show", id, "--json")), &j)
		return j
	}
	poll(t, 20*time.Second, "both jobs ended", func() (bool, string) {
		s, l := show(strict[0].ID), show(lax[0].ID)
		return s.State == "failed" && l.State == "done", s.State + " " + l.State
	})
	if s := show(strict[0].ID); !strings.Contains(s.Error, "refused (--strict)") || !strings.Contains(s.Error, "rebooted") {
		t.Errorf("strict job: %+v", s)
	}
	if l := show(lax[0].ID); !strings.Contains(l.Warning, "rebooted") || !strings.Contains(l.Output, "strict-ran") {
		t.Errorf("lax job: %+v", l)
	}
}

// TestQueueBrokerFailover: the broker running a job dies in the middle of
// it; the agent fails over, the surviving broker takes the job over, and
// the script has run exactly once when the job is done.
func TestQueueBrokerFailover(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	key := gossipKey(t, base, "gossip.key")
	bs := startCluster(t, base, key, 2, 300*time.Millisecond)
	a1, a2 := bs[0].admin(base), bs[1].admin(base)
	poll(t, 20*time.Second, "two alive brokers", func() (bool, string) {
		out := a2.ok("brokers", "--json")
		return strings.Count(out, `"state": "alive"`) == 2, out
	})
	a1.ok("clients", "create", "acme")
	pc := enroll(t, base, a1.token("acme", 1, time.Hour).Token, "pc-01", "windows-ready.json")
	pc.start()
	waitOnline(t, a1, 20*time.Second, pc)
	poll(t, 20*time.Second, "the machine replicated to eu-2", func() (bool, string) {
		_, err := a2.tryMachines()
		return err == nil && len(a2.machines()) == 1, ""
	})
	script := filepath.Join(base, "slow.sh")
	os.WriteFile(script, []byte("sleep 3\necho slow-done\n"), 0o600)
	var js []wire.Job
	json.Unmarshal([]byte(a2.ok("queue", "add", "--machine", pc.full(), "--script", script, "--json")), &js)
	poll(t, 20*time.Second, "the job running on eu-1", func() (bool, string) {
		j, _ := jobFor(a2.jobs(), pc.full())
		return j.State == "running" && j.Broker == "eu-1", fmt.Sprintf("%+v", j)
	})
	bs[0].proc.signal(t, 9)
	poll(t, 60*time.Second, "the job done by eu-2", func() (bool, string) {
		var j wire.Job
		json.Unmarshal([]byte(a2.ok("queue", "show", js[0].ID, "--json")), &j)
		return j.State == "done" && j.Broker == "eu-2" && strings.Contains(j.Output, "slow-done"), fmt.Sprintf("%+v", j)
	})
	if n := strings.Count(pc.proc.stderr.String(), "queued job ran"); n != 1 {
		t.Errorf("the script ran %d times, want once", n)
	}
}
