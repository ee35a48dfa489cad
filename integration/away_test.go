//go:build linux

package integration

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/sysevents/fakesys"
)

// awayTimeout bounds each wait for a reason to show; it only bounds a
// hang. How fast a reason shows is BenchmarkAwayNotice's to measure; the
// tests log what they saw.
const awayTimeout = 20 * time.Second

// startAwayCluster starts three brokers with a 300 ms heartbeat whose
// lost-machine alert opens after 1 s, so a reason shown as lost would
// open one within the test.
func startAwayCluster(t *testing.T, base string) ([]*broker, []*tech) {
	t.Helper()
	key := gossipKey(t, base, "gossip.key")
	args := []string{"--gossip", "127.0.0.1:0", "--gossip-key-file", key, "--gossip-profile", "local", "--region", "eu",
		"--alert-every", "200ms", "--alert-offline", "1s"}
	first := startBrokerArgs(t, base, "eu-1", 300*time.Millisecond, args...)
	bs := []*broker{first,
		startBrokerArgs(t, base, "eu-2", 300*time.Millisecond, append(args, "--join", first.info.Gossip)...),
		startBrokerArgs(t, base, "eu-3", 300*time.Millisecond, append(args, "--join", first.info.Gossip)...)}
	admins := make([]*tech, len(bs))
	for i, b := range bs {
		admins[i] = b.admin(base)
	}
	poll(t, 30*time.Second, "three alive brokers", func() (bool, string) {
		out := admins[0].ok("brokers", "--json")
		return strings.Count(out, `"state": "alive"`) == 3, out
	})
	return bs, admins
}

// everywhere polls machine's card on every admin's broker at once until
// ok accepts it on all (see onBrokers); the brokers are named eu-1, eu-2…
// in the admins' order.
func everywhere(t *testing.T, admins []*tech, machine, what string, start time.Time, ok func(wire.Card) bool) []wire.Card {
	t.Helper()
	views := make([]brokerView, len(admins))
	for i, a := range admins {
		views[i] = brokerView{b: &broker{name: fmt.Sprintf("eu-%d", i+1)}, tech: a}
	}
	return onBrokers(t, views, machine, what+" on every broker", start, ok)
}

// offlineFor accepts a card offline for reason with a detail containing
// detail.
func offlineFor(reason, detail string) func(wire.Card) bool {
	return func(c wire.Card) bool {
		r := c.Reachability
		return !r.Online && r.OfflineReason == reason && strings.Contains(r.Detail, detail) && r.OfflineSince != nil
	}
}

// onlineWith accepts an online card whose detail contains detail.
func onlineWith(detail string) func(wire.Card) bool {
	return func(c wire.Card) bool {
		return c.Reachability.Online && strings.Contains(c.Reachability.Detail, detail)
	}
}

// noAlerts fails the test if admin's broker has an alert open.
func noAlerts(t *testing.T, admin *tech, when string) {
	t.Helper()
	if out := admin.ok("alerts"); !strings.Contains(out, "no open alerts") {
		t.Errorf("alerts %s: %s", when, out)
	}
}

// TestAwayReasons runs an agent whose system bus is a private dbus-daemon
// with fake logind and NetworkManager on it, bridged to the first of three
// brokers. Sleep (lid closed, with logind's delay inhibitor taken and
// released), wake, a metered connection on and off, and a reboot each
// show on the card of every broker with their reason, and the offline
// alert (1 s for a lost machine here) stays shut.
func TestAwayReasons(t *testing.T) {
	needBinaries(t)
	bus := fakesys.Start(t)
	base := testDir(t)
	_, admins := startAwayCluster(t, base)
	admins[0].ok("clients", "create", "acme")
	pc := enroll(t, base, admins[0].token("acme", 1, time.Hour).Token, "laptop-01", "linux-ready.json")
	pc.extra = []string{"--system-bus", bus.Address(), "--on-metered", "quiet", "--quiet-interval", "1h"}
	pc.start()
	everywhere(t, admins, pc.full(), "online", time.Now(), func(c wire.Card) bool { return c.Reachability.Online })
	poll(t, 10*time.Second, "the agent's delay inhibitor", func() (bool, string) {
		return bus.Inhibitors() == 1, fmt.Sprintf("%d held", bus.Inhibitors())
	})

	// Sleep: the agent holds the machine until its broker acknowledged
	// the notice, so the card says asleep the moment logind may go on.
	bus.SetLid(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held, err := bus.Sleep(ctx)
	if err != nil {
		t.Fatalf("sleep: %v (held %s)", err, held)
	}
	slept := time.Now()
	t.Logf("the agent held the sleep for %s", held.Round(time.Millisecond))
	if c := admins[0].show(pc.full()); c.Reachability.Online || c.Reachability.OfflineReason != wire.AwayAsleep {
		t.Errorf("as the inhibitor was released, the holding broker showed %+v, want asleep", c.Reachability)
	}
	cards := everywhere(t, admins, pc.full(), "asleep", slept, offlineFor(wire.AwayAsleep, "lid closed"))
	if since := cards[2].Reachability.OfflineSince; since.Before(slept.Add(-5*time.Second)) || since.After(time.Now()) {
		t.Errorf("offline since %v, want about %v", since, slept)
	}
	time.Sleep(1500 * time.Millisecond) // past the lost alert's 1 s
	for _, a := range admins {
		noAlerts(t, a, "while asleep")
	}

	// Wake: back online, saying so; the inhibitor is taken again.
	bus.SetLid(false)
	woke := time.Now()
	bus.Wake()
	everywhere(t, admins, pc.full(), "resumed", woke, onlineWith("resumed from sleep"))
	poll(t, 10*time.Second, "the delay inhibitor taken again", func() (bool, string) {
		return bus.Inhibitors() == 1, fmt.Sprintf("%d held", bus.Inhibitors())
	})

	// Metered: quiet, with the next check-in as the expected return;
	// unmetered: back at once.
	metered := time.Now()
	bus.SetMetered(true)
	cards = everywhere(t, admins, pc.full(), "quiet", metered, offlineFor(wire.AwayQuiet, "metered"))
	if back := cards[1].Reachability.ExpectedBack; back == nil || back.Before(metered.Add(50*time.Minute)) {
		t.Errorf("quiet: expected back %v, want about an hour ahead", back)
	}
	time.Sleep(1500 * time.Millisecond)
	noAlerts(t, admins[1], "while quiet")
	unmetered := time.Now()
	bus.SetMetered(false)
	everywhere(t, admins, pc.full(), "back from quiet mode", unmetered, onlineWith("the connection is no longer metered"))

	// Reboot: shutdown, rebooting; the inhibitor is released once the
	// notice left.
	rebooting := time.Now()
	bus.Shutdown(true)
	if held, err := bus.WaitReleased(ctx); err != nil {
		t.Fatalf("shutdown: %v (held %s)", err, held)
	}
	everywhere(t, admins, pc.full(), "shutdown", rebooting, offlineFor(wire.AwayShutdown, "rebooting"))
	time.Sleep(1500 * time.Millisecond)
	for _, a := range admins {
		noAlerts(t, a, "while rebooting")
	}
	pc.stop()
}

// TestAgentEnds: an agent killed with SIGKILL shows lost; started again,
// it says its previous run ended uncleanly, in its hello (the overlay)
// and in its first check-in (the history and the card, a readiness
// fact). Stopped with SIGTERM it shows stopped, and started again it
// says it restarted.
func TestAgentEnds(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBroker(t, base, "eu-1", 300*time.Millisecond)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	pc := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "pc-01", "linux-ready.json")
	pc.start()
	waitOnline(t, admin, 20*time.Second, pc)
	admins := []*tech{admin}

	killed := time.Now()
	pc.proc.signal(t, syscall.SIGKILL)
	pc.proc.wait(t, exitTimeout)
	everywhere(t, admins, pc.full(), "lost", killed, offlineFor(wire.AwayLost, "heartbeats stopped"))

	pc.start()
	c := everywhere(t, admins, pc.full(), "the unclean end", time.Now(), func(c wire.Card) bool {
		return c.Reachability.Online && c.Readiness.CheckInReason == wire.ReasonUnclean
	})[0]
	if r := c.Reachability.Returned; r == nil || r.What != wire.ReturnedUnclean || r.At.Before(killed.Add(-2*time.Minute)) || r.At.After(killed) {
		t.Errorf("returned %+v, want unclean, last alive before the kill at %v", r, killed)
	}
	if !strings.Contains(c.Reachability.Detail, "ended uncleanly") {
		t.Errorf("detail %q", c.Reachability.Detail)
	}
	card := admin.show(pc.full())
	if card.Readiness.LastUncleanEnd == nil || !strings.Contains(card.Readiness.LastUncleanEnd.Detail, "no exit recorded") {
		t.Errorf("readiness last unclean end %+v", card.Readiness.LastUncleanEnd)
	}
	if len(card.History) == 0 || card.History[0].Reason != wire.ReasonUnclean || card.History[0].Detail == "" {
		t.Errorf("history %+v, want an unclean-end check-in first, with its detail", card.History)
	}

	// Killed again, this time with the service manager saying how, as
	// systemd's ExecStopPost does (sessiond exit-status): the history
	// names the signal.
	pc.proc.signal(t, syscall.SIGKILL)
	pc.proc.wait(t, exitTimeout)
	if r := runCmd(t, cmdTimeout, []string{"SERVICE_RESULT=signal", "EXIT_CODE=killed", "EXIT_STATUS=KILL"},
		bins.sessiond, "exit-status", "--state", pc.dir); r.err != nil {
		t.Fatalf("sessiond exit-status: %v", r)
	}
	pc.start()
	everywhere(t, admins, pc.full(), "the exit status", time.Now(), func(c wire.Card) bool {
		return c.Reachability.Online && c.Readiness.CheckInReason == wire.ReasonUnclean &&
			c.Readiness.LastUncleanEnd != nil && c.Readiness.LastUncleanEnd.Detail == "killed by signal KILL"
	})

	stopped := time.Now()
	pc.stop()
	everywhere(t, admins, pc.full(), "stopped", stopped, offlineFor(wire.AwayStopped, "the agent was stopped"))
	pc.start()
	c = everywhere(t, admins, pc.full(), "restarted", time.Now(), onlineWith("restarted"))[0]
	if c.Readiness.LastUncleanEnd == nil {
		t.Error("the unclean end is gone from readiness after a clean restart; the card keeps the newest")
	}
	pc.stop()
}

// meteredAgent starts a broker and an agent named name whose system bus
// (a private dbus-daemon with fake logind and NetworkManager) says the
// connection is metered, with more sessiond run flags; it returns the
// broker's admin and the agent, started.
func meteredAgent(t *testing.T, name string, flags ...string) (*tech, *agent) {
	t.Helper()
	needBinaries(t)
	bus := fakesys.Start(t)
	bus.SetMetered(true)
	base := testDir(t)
	b := startBroker(t, base, "eu-1", 300*time.Millisecond)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	pc := enroll(t, base, admin.token("acme", 1, time.Hour).Token, name, "linux-ready.json")
	pc.extra = append([]string{"--system-bus", bus.Address()}, flags...)
	pc.start()
	return admin, pc
}

// TestQuietCheckIns runs an agent that starts on a metered connection
// with the quiet policy and a 2 s quiet cadence: the card shows it quiet,
// expected back at its next check-in, and its quiet check-ins after the
// first leave the package list out (the broker fills it from the stored
// snapshot, so the history counts the same packages).
func TestQuietCheckIns(t *testing.T) {
	admin, pc := meteredAgent(t, "laptop-02", "--on-metered", "quiet", "--quiet-interval", "2s")
	admins := []*tech{admin}
	c := everywhere(t, admins, pc.full(), "three quiet check-ins", time.Now(), func(c wire.Card) bool {
		return offlineFor(wire.AwayQuiet, "metered")(c) && c.Readiness.CheckInReason == wire.ReasonQuiet && c.Readiness.CheckInSeq >= 3
	})[0]
	if back := c.Reachability.ExpectedBack; back == nil || c.Readiness.LastCheckIn == nil ||
		back.Sub(*c.Readiness.LastCheckIn).Abs() > 3*time.Second {
		t.Errorf("expected back %v, want about 2 s after the last check-in %v", back, c.Readiness.LastCheckIn)
	}
	card := admin.show(pc.full())
	var quiet []wire.HistoryItem
	for _, h := range card.History {
		if h.Reason == wire.ReasonQuiet {
			quiet = append(quiet, h)
		}
	}
	if len(quiet) < 2 {
		t.Fatalf("history %+v, want two quiet check-ins", card.History)
	}
	for _, h := range quiet {
		if h.Packages == 0 || h.Packages != card.History[len(card.History)-1].Packages {
			t.Errorf("quiet check-in %d counts %d packages, the first check-in %d", h.Seq, h.Packages, card.History[len(card.History)-1].Packages)
		}
	}
	if logs := pc.proc.stderr.String(); strings.Contains(logs, "asked for the whole snapshot") {
		t.Errorf("agent log:\n%s", pc.proc.stderr.tail(30))
	}
	pc.stop()
}

// TestMeteredPolicy: an agent whose own flag says normal stays online on
// a metered connection until the fleet sets the quiet policy for it
// (meshctl policy set): it goes quiet within a heartbeat or two, checking
// in at the policy's cadence. Cleared while the agent is quiet, the
// policy reaches it with its next check-in (asked for here at the
// machine), and it comes back.
func TestMeteredPolicy(t *testing.T) {
	admin, pc := meteredAgent(t, "laptop-03", "--on-metered", "normal")
	admins := []*tech{admin}
	everywhere(t, admins, pc.full(), "online on a metered connection", time.Now(), func(c wire.Card) bool {
		return c.Reachability.Online && c.Readiness.CheckInSeq > 0
	})
	time.Sleep(time.Second) // several heartbeats: still online
	if c := admin.show(pc.full()); !c.Reachability.Online {
		t.Fatalf("the normal policy went quiet: %+v", c.Reachability)
	}

	set := time.Now()
	admin.ok("policy", "set", "--on-metered", "quiet", "--quiet-interval", "15m", pc.full())
	c := everywhere(t, admins, pc.full(), "quiet by the fleet's policy", set, offlineFor(wire.AwayQuiet, "metered"))[0]
	if back := c.Reachability.ExpectedBack; back == nil || back.Sub(set) < 14*time.Minute || back.Sub(set) > 16*time.Minute {
		t.Errorf("expected back %v, want the policy's 15 min after %v", back, set)
	}

	admin.ok("policy", "clear", pc.full())
	if r := runCmd(t, cmdTimeout, nil, bins.sessiond, "checkin", "--state", pc.dir); r.err != nil {
		t.Fatalf("sessiond checkin: %v", r)
	}
	everywhere(t, admins, pc.full(), "back once the policy is cleared", time.Now(), onlineWith("the fleet's policy no longer asks for it"))
	pc.stop()
}
