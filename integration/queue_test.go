package integration

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestQueueOrderAndFilters builds a fleet with one machine in each
// readiness state that can be reached without waiting (stale needs hours of
// silence under the broker's fixed policy) across two clients, and checks
// the queue order (readiness first, then online before offline, then
// client and name), every filter, the card's JSON keys, and the human
// table's reachability column.
func TestQueueOrderAndFilters(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBroker(t, base, "queue", 300*time.Millisecond)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	admin.ok("clients", "create", "globex")
	acme := admin.token("acme", 4, time.Hour).Token
	globex := admin.token("globex", 3, time.Hour).Token

	wsReady := enroll(t, base, acme, "ws-ready", "windows-ready.json")
	wsStopped := enroll(t, base, acme, "ws-stopped", "windows-ready.json")
	wsMany := enroll(t, base, acme, "ws-many", "windows-many-updates.json")
	never := enroll(t, base, acme, "never", "") // enrolled, never runs
	srvReady := enroll(t, base, globex, "srv-ready", "linux-ready.json")
	wsOld := enroll(t, base, globex, "ws-old", "windows-old-agent.json")
	macConsent := enroll(t, base, globex, "mac-consent", "macos-consent-expired.json")
	running := []*agent{wsReady, wsStopped, wsMany, srvReady, wsOld, macConsent}
	for _, a := range running {
		a.start()
	}
	waitOnline(t, admin, 20*time.Second, running...)
	wsStopped.stop()
	poll(t, 5*time.Second, "stopped agent offline", func() (bool, string) {
		cs, err := admin.tryMachines("--offline")
		if err != nil {
			return false, err.Error()
		}
		_, ok := cardOf(cs, wsStopped.id)
		return ok, "still online"
	})

	// The whole queue, best first.
	all := admin.machines()
	want := []string{
		"acme/ws-ready", "globex/srv-ready", // ready, online
		"acme/ws-stopped",               // ready, offline
		"acme/ws-many", "globex/ws-old", // degraded, online
		"globex/mac-consent", // consent-required, online
		"acme/never",         // incomplete, offline
	}
	if got := names(all); !slices.Equal(got, want) {
		t.Fatalf("queue order:\n got %v\nwant %v", got, want)
	}
	checkCards(t, all, map[string]cardWant{
		"acme/ws-ready":      {wire.StateReady, true, ""},
		"globex/srv-ready":   {wire.StateReady, true, ""},
		"acme/ws-stopped":    {wire.StateReady, false, ""},
		"acme/ws-many":       {wire.StateDegraded, true, "12 pending updates (limit 10)"},
		"globex/ws-old":      {wire.StateDegraded, true, "agent 0.0.1 is behind"},
		"globex/mac-consent": {wire.StateConsentRequired, true, "approval expired"},
		"acme/never":         {wire.StateIncomplete, false, "never checked in"},
	})
	if c, _ := cardOf(all, wsOld.id); !c.Readiness.AgentBehind {
		t.Errorf("ws-old: agent_behind is false")
	}
	if c, _ := cardOf(all, never.id); c.Reachability.LastSeen != nil {
		t.Errorf("never: a machine that never connected has last_seen %v", c.Reachability.LastSeen)
	}

	filters := []struct {
		args []string
		want []string
	}{
		{[]string{"--client", "acme"}, []string{"acme/ws-ready", "acme/ws-stopped", "acme/ws-many", "acme/never"}},
		{[]string{"--client", "globex"}, []string{"globex/srv-ready", "globex/ws-old", "globex/mac-consent"}},
		{[]string{"--client", "initech"}, []string{}},
		{[]string{"--readiness", "ready"}, []string{"acme/ws-ready", "globex/srv-ready", "acme/ws-stopped"}},
		{[]string{"--readiness", "degraded"}, []string{"acme/ws-many", "globex/ws-old"}},
		{[]string{"--readiness", "consent-required"}, []string{"globex/mac-consent"}},
		{[]string{"--readiness", "stale"}, []string{}},
		{[]string{"--readiness", "incomplete"}, []string{"acme/never"}},
		{[]string{"--online"}, []string{"acme/ws-ready", "globex/srv-ready", "acme/ws-many", "globex/ws-old", "globex/mac-consent"}},
		{[]string{"--offline"}, []string{"acme/ws-stopped", "acme/never"}},
		{[]string{"--pending-update", "KB5034441"}, []string{"acme/ws-ready", "acme/ws-stopped", "acme/ws-many"}},
		{[]string{"--pending-update", "kb5034441"}, []string{"acme/ws-ready", "acme/ws-stopped", "acme/ws-many"}},
		{[]string{"--pending-update", "openssl"}, []string{"globex/srv-ready"}},
		{[]string{"--pending-update", "KB0000000"}, []string{}},
		{[]string{"--client", "acme", "--offline"}, []string{"acme/ws-stopped", "acme/never"}},
		{[]string{"--client", "globex", "--readiness", "degraded"}, []string{"globex/ws-old"}},
		{[]string{"--readiness", "ready", "--online", "--pending-update", "KB5034441"}, []string{"acme/ws-ready"}},
	}
	for _, f := range filters {
		if got := names(admin.machines(f.args...)); !slices.Equal(got, f.want) {
			t.Errorf("machines %s:\n got %v\nwant %v", strings.Join(f.args, " "), got, f.want)
		}
	}
	if msg := admin.fails("machines", "--readiness", "bogus"); !strings.Contains(msg, "consent-required") {
		t.Errorf("machines --readiness bogus: stderr should list the valid states:\n%s", msg)
	}
	if msg := admin.fails("machines", "--online", "--offline"); !strings.Contains(msg, "exclude") {
		t.Errorf("machines --online --offline: stderr should say they exclude each other:\n%s", msg)
	}

	checkCardKeys(t, admin.ok("machines", "--json"))
	checkTable(t, admin.ok("machines"), all)
}

// cardWant is what a card's layers should say.
type cardWant struct {
	state  string
	online bool
	reason string // a substring of one of the readiness reasons; "" means none
}

func checkCards(t *testing.T, cards []wire.Card, want map[string]cardWant) {
	t.Helper()
	for _, c := range cards {
		key := c.Client + "/" + c.Name
		w, ok := want[key]
		if !ok {
			t.Errorf("unexpected card %s", key)
			continue
		}
		r := c.Readiness
		if r.State != w.state || c.Reachability.Online != w.online {
			t.Errorf("%s: readiness %s, online %v; want %s, %v (reasons %q)", key, r.State, c.Reachability.Online, w.state, w.online, r.Reasons)
		}
		switch {
		case w.reason == "" && len(r.Reasons) != 0:
			t.Errorf("%s: want no reasons, got %q", key, r.Reasons)
		case w.reason != "" && !slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.Contains(s, w.reason) }):
			t.Errorf("%s: no reason mentions %q: %q", key, w.reason, r.Reasons)
		}
		if c.Session != nil {
			t.Errorf("%s: session is %+v, want null (no live sessions yet)", key, c.Session)
		}
	}
}

// checkCardKeys checks that every card in raw JSON has the three layers as
// keys, with session null.
func checkCardKeys(t *testing.T, raw string) {
	t.Helper()
	var cards []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &cards); err != nil {
		t.Fatalf("machines --json: %v", err)
	}
	for i, c := range cards {
		for _, k := range []string{"readiness", "reachability", "session"} {
			if _, ok := c[k]; !ok {
				t.Errorf("card %d has no %q key: %s", i, k, keys(c))
			}
		}
		if s := string(c["session"]); s != "null" {
			t.Errorf("card %d: session is %s, want null", i, s)
		}
	}
}

func keys(m map[string]json.RawMessage) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

// checkTable checks meshctl's human queue: a REACHABILITY column whose
// cells put beside the dot the word online, or why the machine is away
// (offline when no broker knows why: a machine never seen), rows in
// queue order.
func checkTable(t *testing.T, out string, cards []wire.Card) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(cards)+1 {
		t.Fatalf("table has %d lines for %d machines:\n%s", len(lines), len(cards), out)
	}
	header := strings.Fields(lines[0])
	if !slices.Contains(header, "REACHABILITY") || !slices.Contains(header, "READINESS") {
		t.Errorf("table header lacks READINESS or REACHABILITY: %q", lines[0])
	}
	for i, c := range cards {
		f := strings.Fields(lines[i+1])
		if len(f) < 5 || f[0] != c.Client || f[1] != c.Name {
			t.Errorf("row %d is %q, want %s/%s", i+1, lines[i+1], c.Client, c.Name)
			continue
		}
		dot, word := f[3], strings.TrimSuffix(f[4], ",")
		switch {
		case f[2] != c.Readiness.State:
			t.Errorf("row %s/%s: readiness column %q, want %q", c.Client, c.Name, f[2], c.Readiness.State)
		case c.Reachability.Online && (dot != "●" || word != "online"):
			t.Errorf("row %s/%s: reachability %q %q, want ● online", c.Client, c.Name, dot, word)
		case !c.Reachability.Online && (dot != "○" || word != cmp.Or(c.Reachability.OfflineReason, "offline")):
			t.Errorf("row %s/%s: reachability %q %q, want ○ %s", c.Client, c.Name, dot, word, cmp.Or(c.Reachability.OfflineReason, "offline"))
		}
	}
}
