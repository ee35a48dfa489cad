package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestDispatchHelpers: machines --for picks machines from all three
// layers, wait --online and connect --when-reachable return when a machine
// comes back, and explain answers in plain sentences from the card.
func TestDispatchHelpers(t *testing.T) {
	base, admin, ready := oneAgent(t, "disp", "linux-ready.json")
	many := enroll(t, base, admin.token("acme", 2, time.Hour).Token, "pc-busy-updates", "windows-many-updates.json")
	late := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "pc-late", "windows-ready.json")
	many.start()
	waitOnline(t, admin, 20*time.Second, many)

	names := func(args ...string) []string {
		var cs []wire.Card
		json.Unmarshal([]byte(admin.ok(append([]string{"machines", "--json"}, args...)...)), &cs)
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	// The agents report this host's real load and logins, so the
	// expectation is worked out from the cards themselves.
	var cards []wire.Card
	json.Unmarshal([]byte(admin.ok("machines", "--json")), &cards)
	var wantQuick, wantMaint []string
	for _, c := range cards {
		r := c.Reachability
		if !r.Online {
			continue
		}
		if c.Readiness.State == wire.StateReady && (r.Load1 == nil || *r.Load1 < 0.9) {
			wantQuick = append(wantQuick, c.Name)
		}
		if r.UserPresent != nil && !*r.UserPresent {
			wantMaint = append(wantMaint, c.Name)
		}
	}
	if slices.Contains(wantQuick, many.name) {
		t.Fatalf("%s has too many pending updates to be ready", many.name)
	}
	if got := names("--for", "quick-fix"); !slices.Equal(got, wantQuick) {
		t.Errorf("quick-fix: %v, want %v (ready, reachable, not busy)", got, wantQuick)
	}
	if got := names("--for", "maintenance"); !slices.Equal(got, wantMaint) {
		t.Errorf("maintenance: %v, want %v (reachable, nobody logged in)", got, wantMaint)
	}
	if msg := admin.fails("machines", "--for", "lunch"); !strings.Contains(msg, "quick-fix") {
		t.Errorf("bad --for: %q", msg)
	}

	// explain, online and offline.
	out := admin.ok("explain", ready.full())
	for _, want := range []string{"What we know (stored state):", "it is ready for work", "Can we connect live now", "Yes: its agent is connected to broker disp"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain %s lacks %q:\n%s", ready.name, want, out)
		}
	}
	out = admin.ok("explain", late.full())
	if !strings.Contains(out, "never checked in") || !strings.Contains(out, "No: it was last seen never") {
		t.Errorf("explain of a machine never seen:\n%s", out)
	}

	// wait --online: times out for a machine that stays away, returns when
	// one comes back.
	if msg := admin.fails("wait", late.full(), "--online", "--timeout", "1s"); !strings.Contains(msg, "did not come online within 1s") {
		t.Errorf("wait timeout: %q", msg)
	}
	env := []string{"READYMESH_HOME=" + admin.home, "READYMESH_SESSION_ADDR=127.0.0.1:0"}
	w := startProc(t, "meshctl wait", env, bins.meshctl, "wait", late.full(), "--online", "--timeout", "30s")
	c := startProc(t, "meshctl connect --when-reachable", env, bins.meshctl, "connect", late.full(), "--when-reachable", "--wait", "30s", "--hold", "1s")
	time.Sleep(time.Second)
	if w.exited() || c.exited() {
		t.Fatal("wait returned before the machine came online")
	}
	late.start()
	w.waitOutput(t, late.full()+" is online", 30*time.Second)
	c.waitOutput(t, "session ", 30*time.Second)
	if err := c.wait(t, 30*time.Second); err != nil {
		t.Errorf("connect --when-reachable: %v", err)
	}
}
