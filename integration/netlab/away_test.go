//go:build linux

package netlab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/sessiond/sysevents/fakesys"
)

// traffic is what crossed a namespace's non-loopback interfaces, in IP
// packets and bytes, each way.
type traffic struct {
	OutPackets, OutBytes, InPackets, InBytes uint64
}

func (x traffic) minus(y traffic) traffic {
	return traffic{x.OutPackets - y.OutPackets, x.OutBytes - y.OutBytes, x.InPackets - y.InPackets, x.InBytes - y.InBytes}
}

func (x traffic) packets() uint64 { return x.OutPackets + x.InPackets }

func (x traffic) String() string {
	return fmt.Sprintf("%d packets out (%d bytes), %d in (%d bytes)", x.OutPackets, x.OutBytes, x.InPackets, x.InBytes)
}

// countHost counts every IP packet namespace ns sends or receives on an
// interface other than loopback, whatever its protocol, in the nftables
// table "inet hostcount", and returns a function that reads the counts.
// Packets the namespace's own filters drop on output are not counted
// (the counting chains run after them).
func countHost(l *Lab, ns string) func() traffic {
	l.t.Helper()
	l.nftScript(ns, `
add table inet hostcount
create counter inet hostcount sent
create counter inet hostcount received
add chain inet hostcount out { type filter hook output priority filter + 10 ; }
add chain inet hostcount in { type filter hook input priority filter + 10 ; }
add rule inet hostcount out oifname != "lo" counter name "sent"
add rule inet hostcount in iifname != "lo" counter name "received"
`)
	return func() traffic {
		l.t.Helper()
		c := l.counters(ns, "inet", "hostcount")
		return traffic{c["sent"][0], c["sent"][1], c["received"][0], c["received"][1]}
	}
}

// job is the part of meshctl queue show --json (wire.Job) this test reads.
type job struct {
	ID       string     `json:"id"`
	State    string     `json:"state"`
	ExitCode *int       `json:"exit_code"`
	Output   string     `json:"output"`
	Finished *time.Time `json:"finished"`
}

// queueJob queues script for machine (client/name) and returns the job.
func (f *fleet) queueJob(t *testing.T, machine, script string) job {
	t.Helper()
	var js []job
	if err := json.Unmarshal(f.meshctl(t, "queue", "add", "--machine", machine, "--script", script, "--json"), &js); err != nil || len(js) != 1 {
		t.Fatalf("queue add for %s: %d jobs, %v", machine, len(js), err)
	}
	return js[0]
}

// showJob reads a job back.
func (f *fleet) showJob(t *testing.T, id string) job {
	t.Helper()
	var j job
	if err := json.Unmarshal(f.meshctl(t, "queue", "show", id, "--json"), &j); err != nil {
		t.Fatalf("queue show %s: %v", id, err)
	}
	return j
}

// waitJobDone polls the job until it is done with exit status 0.
func (f *fleet) waitJobDone(t *testing.T, id string, limit time.Duration) job {
	t.Helper()
	deadline := time.Now().Add(limit)
	var j job
	for time.Now().Before(deadline) {
		if j = f.showJob(t, id); j.State == "done" && j.ExitCode != nil && *j.ExitCode == 0 {
			return j
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("job %s not done within %s: %+v", id, limit, j)
	return j
}

// TestQuietModeOnMeteredConnection runs an agent in its own namespace,
// linked to the broker's, whose system bus is a private dbus-daemon with a
// fake NetworkManager on it, and counts every packet the agent's
// namespace sends or receives. Online it heartbeats and runs a queued job
// at once. When NetworkManager says the connection is metered, the agent
// says it goes quiet and then sends nothing at all: no heartbeat, no STUN
// refresh, no reply to a newly queued job, which waits. A check-in forced
// with sessiond checkin is one short exchange over a connection made for
// it, and silence again after. When the connection is no longer metered
// the agent is back online at once, saying so, and the job runs.
func TestQuietModeOnMeteredConnection(t *testing.T) {
	l := New(t, "nft")
	bus := fakesys.Start(t)
	brk, agt := l.Host("brk"), l.Host("agt")
	// No IPv6 on the agent's side: the kernel's own router solicitations
	// and multicast reports would be counted as the agent's traffic.
	l.Exec(agt, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	l.Exec(agt, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
	l.Link(brk, "10.213.5.1/24", agt, "10.213.5.2/24")
	count := countHost(l, agt)

	f := startBroker(t, l, brk, "10.213.5.1")
	const name, machine = "quiet-pc", "lab/quiet-pc"
	state, _ := f.agentProc(t, agt, name, "--inventory", fixture,
		"--on-metered", "quiet", "--quiet-interval", "1h", "--system-bus", bus.Address())
	f.waitCard(t, name, 30*time.Second, func(c card) bool { return c.Reachability.Online && c.Readiness.CheckInSeq > 0 })

	script := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(script, []byte("echo quiet-job-ran\nexit 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Baseline, online: the bridge heartbeats (1 s here) and a queued
	// job runs at once.
	before := count()
	time.Sleep(5 * time.Second)
	online := count().minus(before)
	t.Logf("online, 5 s: %s", online)
	if online.packets() < 5 {
		t.Errorf("online for 5 s with a 1 s heartbeat the agent's namespace saw %d packets, want at least 5 (is the counter counting?)", online.packets())
	}
	queued := time.Now()
	first := f.queueJob(t, machine, script)
	j := f.waitJobDone(t, first.ID, 20*time.Second)
	t.Logf("online, a queued job ran in %s: output %q", time.Since(queued).Round(time.Millisecond), strings.TrimSpace(j.Output))

	// Metered: the agent says it goes quiet, and when it is due back.
	bus.SetMetered(true)
	metered := time.Now()
	c := f.waitCard(t, name, 20*time.Second, func(c card) bool {
		return !c.Reachability.Online && c.Reachability.OfflineReason == "quiet"
	})
	t.Logf("card offline, quiet, %s after the connection became metered: detail %q, expected back %v",
		time.Since(metered).Round(time.Millisecond), c.Reachability.Detail, c.Reachability.ExpectedBack)
	if back := c.Reachability.ExpectedBack; back == nil || back.Sub(metered.Add(time.Hour)).Abs() > 10*time.Second {
		t.Errorf("going quiet: expected_back %v, want about an hour from %v", back, metered.Format(time.RFC3339))
	}
	quietAt := count()
	time.Sleep(time.Second) // the bridge's close settles
	settled := count()
	t.Logf("going quiet, from the card showing quiet through 1 s: %s", settled.minus(quietAt))
	time.Sleep(5 * time.Second)
	silent := count().minus(settled)
	t.Logf("quiet, 5 s: %s", silent)
	if silent.packets() != 0 {
		t.Errorf("quiet for 5 s the agent's namespace saw %s, want none", silent)
	}

	// A job queued now waits: the queue sends work over the bridge only.
	mark := count()
	second := f.queueJob(t, machine, script)
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if j := f.showJob(t, second.ID); j.State != "queued" {
			t.Fatalf("a job queued for a quiet agent is %s, want queued: %+v", j.State, j)
		}
	}
	waiting := count().minus(mark)
	t.Logf("quiet, 4 s with a job queued: %s", waiting)
	if waiting.packets() != 0 {
		t.Errorf("quiet with a job queued the agent's namespace saw %s, want none", waiting)
	}

	// A forced check-in (the person at the machine asked): one check-in
	// over a fresh connection, whole, with reason demand, since that is
	// why it was made.
	mark = count()
	seqBefore := f.waitCard(t, name, 5*time.Second, func(card) bool { return true }).Readiness.CheckInSeq
	out, err := l.Command(agt, filepath.Join(binDir, "sessiond"), "checkin", "--state", state).CombinedOutput()
	if err != nil {
		t.Fatalf("sessiond checkin: %v: %s", err, out)
	}
	t.Logf("sessiond checkin: %s", strings.TrimSpace(string(out)))
	c = f.waitCard(t, name, 10*time.Second, func(c card) bool { return c.Readiness.CheckInSeq > seqBefore })
	if c.Readiness.CheckInReason != "demand" {
		t.Errorf("a check-in forced in quiet mode has reason %q, want demand", c.Readiness.CheckInReason)
	}
	r := c.Reachability
	if r.Online || r.OfflineReason != "quiet" {
		t.Errorf("after a quiet check-in the card is online=%v, offline_reason %q; want offline, quiet", r.Online, r.OfflineReason)
	}
	if at := c.Readiness.LastCheckIn; at == nil || r.ExpectedBack == nil || r.ExpectedBack.Sub(at.Add(time.Hour)).Abs() > 5*time.Second {
		t.Errorf("after a quiet check-in at %v: expected_back %v, want an hour after it", at, r.ExpectedBack)
	}
	time.Sleep(time.Second) // the hang-up settles
	checkedIn := count()
	exchange := checkedIn.minus(mark)
	t.Logf("the forced quiet check-in, through 1 s after: %s", exchange)
	if exchange.OutPackets == 0 || exchange.InPackets == 0 {
		t.Errorf("a forced quiet check-in moved %s, want packets both ways", exchange)
	}
	time.Sleep(3 * time.Second)
	after := count().minus(checkedIn)
	t.Logf("quiet again, 3 s: %s", after)
	if after.packets() != 0 {
		t.Errorf("after the quiet check-in the agent's namespace saw %s in 3 s, want none", after)
	}
	if j := f.showJob(t, second.ID); j.State != "queued" {
		t.Errorf("after a quiet check-in the job is %s, want still queued (work goes over the bridge only)", j.State)
	}

	// Unmetered: back online at once, saying why, and the job runs.
	mark = count()
	bus.SetMetered(false)
	unmetered := time.Now()
	c = f.waitCard(t, name, 20*time.Second, func(c card) bool {
		return c.Reachability.Online && strings.Contains(c.Reachability.Detail, "no longer metered")
	})
	t.Logf("card online %s after the connection became unmetered: detail %q", time.Since(unmetered).Round(time.Millisecond), c.Reachability.Detail)
	if ret := c.Reachability.Returned; ret == nil || ret.What != "unmetered" {
		t.Errorf("back from quiet mode: returned %+v, want unmetered", ret)
	}
	j = f.waitJobDone(t, second.ID, 20*time.Second)
	t.Logf("the job queued while quiet ran %s after the connection became unmetered: output %q",
		time.Since(unmetered).Round(time.Millisecond), strings.TrimSpace(j.Output))
	t.Logf("from unmetered to the job done: %s", count().minus(mark))
}
