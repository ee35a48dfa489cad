package console

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	relpkg "github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestRolloutConsole shows a rollout in the console as the broker runs it.
// A release whose binary exits at start is published and rolled out to
// acme with a canary wave of one machine. Both acme agents pin the
// release key (they enrolled before the broker trusted one), so the
// canary's agent takes the update, watches the new binary exit three
// times, and rolls back; the rollout pauses, leaving the other machine
// waiting in wave 1. acme-fs01 reports agent 0.0.9, behind its client's
// newest: its page links to the rollout that would bring it level, and
// the rollout's view shows the state, the counts by step, and each
// machine's step, wave and detail; the canary's page shows how its last
// update went. An abort through meshctl then reaches the open rollout
// view without a reload.
func TestRolloutConsole(t *testing.T) {
	f := newFleet(t)
	fs01, laptop := f.agents["acme-fs01"], f.agents["acme-laptop-07"]

	// The release: signed with a key of its own, trusted by the broker
	// and pinned by the acme agents, with a "binary" that fails at start.
	keys, rel := filepath.Join(f.dir, "release-keys"), filepath.Join(f.dir, "release")
	f.admin.meshctl("releases", "keygen", "--out", keys, "--unencrypted")
	pub := filepath.Join(keys, relpkg.PublicKeyFile)
	f.admin.meshctl("releases", "trust", pub)
	for _, a := range []*agent{fs01, laptop} {
		runSessiond(t, "trust-release-key", "--state", a.dir, pub)
	}
	if err := os.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	broken := "#!/bin/sh\necho broken build >&2\nexit 2\n"
	if err := os.WriteFile(filepath.Join(rel, relpkg.BinaryName(runtime.GOOS+"/"+runtime.GOARCH)), []byte(broken), 0o755); err != nil {
		t.Fatal(err)
	}
	newest := cardOf(t, f, fs01.id).Readiness.NewestAgentVersion
	version := nextPatch(t, newest)
	f.admin.meshctl("releases", "sign", rel, "--key", filepath.Join(keys, relpkg.SecretKeyFile), "--version", version)
	f.admin.meshctl("releases", "publish", rel)
	var started wire.Rollout
	out := f.admin.meshctl("rollout", "start", version, "--client", "acme", "--canary", "50%", "--health-window", "1m", "--json")
	if err := json.Unmarshal([]byte(out), &started); err != nil || started.ID == "" {
		t.Fatalf("rollout start --json: %v\n%s", err, out)
	}
	id := started.ID

	// The canary rolls back; the rollout pauses.
	ro := waitRollout(t, f, id, func(r wire.Rollout) bool { return r.State == wire.RolloutPaused })
	var canary, waiting wire.RolloutMachine
	for _, m := range ro.Machines {
		if m.Wave == 0 {
			canary = m
		} else {
			waiting = m
		}
	}
	if canary.Step != wire.StepRolledBack || waiting.Step != wire.StepWaiting {
		t.Fatalf("paused with canary %+v and wave 1 %+v; want the canary rolled back and the rest waiting", canary, waiting)
	}
	canaryCard := waitCard(t, f, canary.MachineID, func(c wire.Card) bool { return c.Readiness.LastUpdate != nil })
	fsCard := cardOf(t, f, fs01.id)
	ref := fsCard.Readiness.Rollout
	if !fsCard.Readiness.AgentBehind || ref == nil || ref.ID != id {
		t.Fatalf("acme-fs01's card: behind %v, rollout %+v; want behind, in rollout %s", fsCard.Readiness.AgentBehind, ref, id)
	}

	alice := f.technician("alice", "acme,globex", "read-only")
	br := newBrowser(t)
	br.on(t).signIn(f.http, alice, "alice")

	t.Run("fleet row", func(t *testing.T) {
		b := br.on(t)
		row := fmt.Sprintf(`tr.machine[data-id=%q] td.agent`, fs01.id)
		b.waitFor("acme-fs01's agent cell", `document.querySelector('`+row+`')`, 10*time.Second)
		b.waitFor("its rollout step", `(document.querySelector('`+row+` .step')||{}).textContent === '`+ref.Step+`'`, 10*time.Second)
		if got := b.text(row); !strings.HasPrefix(got, fsCard.Readiness.AgentVersion) || !strings.Contains(got, "behind") {
			t.Errorf("agent cell %q: want version %s and the behind marker", got, fsCard.Readiness.AgentVersion)
		}
		other := fmt.Sprintf(`tr.machine[data-id=%q] td.agent`, f.agents["globex-web-02"].id)
		if got := b.text(other); strings.Contains(got, "behind") || b.text(other+" .step") != "" {
			t.Errorf("a machine in no rollout and not behind shows %q", got)
		}
		b.screenshot(t, "fleet-agents.png")
	})

	t.Run("machine behind links to its rollout", func(t *testing.T) {
		b := br.on(t)
		b.run("open acme-fs01", chromedp.Navigate(f.http+"/#/machine/"+fs01.id))
		b.waitFor("the rollout on its page", `document.querySelector('#machine-rollout a.rollout-link')`, 10*time.Second)
		agentText := b.text("#machine-agent")
		if !strings.Contains(agentText, fsCard.Readiness.AgentVersion) || !strings.Contains(agentText, "behind "+newest) {
			t.Errorf("agent %q: want %s behind %s", agentText, fsCard.Readiness.AgentVersion, newest)
		}
		r := b.text("#machine-rollout")
		for _, want := range []string{id, version, wire.RolloutPaused, ref.Step, "in the " + waveWord(ref.Wave)} {
			if !strings.Contains(r, want) {
				t.Errorf("rollout on the machine page %q lacks %q", r, want)
			}
		}
		// The agent-behind reason names the rollout, as a link too.
		if href, _ := eval[string](b, `(document.querySelector('#machine-readiness .reasons a.rollout-link')||{}).hash||''`); href != "#/rollout/"+id {
			t.Errorf("the reason's rollout link goes to %q", href)
		}
		b.screenshot(t, "machine-behind.png")
		b.run("follow the link", chromedp.Click(chromedp.CSS("#machine-rollout a.rollout-link")))
		b.waitFor("the rollout view", `document.querySelector('#rollout[data-id="`+id+`"] #rollout-machines')`, 10*time.Second)
	})

	t.Run("rollout view", func(t *testing.T) {
		b := br.on(t)
		if got := b.text("#rollout .state .word"); got != wire.RolloutPaused {
			t.Errorf("state %q, want %s", got, wire.RolloutPaused)
		}
		if got := b.text("#rollout-reason"); got != ro.PausedReason || got == "" {
			t.Errorf("reason %q, want %q", got, ro.PausedReason)
		}
		counts, _ := eval[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('#rollout-counts li')].map((li) => [li.dataset.step, li.querySelector('.n').textContent]))`)
		for step, n := range ro.Counts {
			if counts[step] != fmt.Sprint(n) {
				t.Errorf("count of %s: %q, want %d", step, counts[step], n)
			}
		}
		type row struct{ Machine, Wave, Step, Detail string }
		rows, _ := eval[[]row](b, `[...document.querySelectorAll('#rollout-machines tr.rollout-machine')].map((r) => ({
			Machine: r.dataset.id, Wave: r.cells[1].textContent, Step: r.cells[2].textContent, Detail: r.cells[4].textContent}))`)
		var want []row
		for _, m := range ro.Machines {
			want = append(want, row{m.MachineID, waveWord(m.Wave), m.Step, m.Detail})
		}
		slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.Machine, b.Machine) })
		slices.SortFunc(want, func(a, b row) int { return strings.Compare(a.Machine, b.Machine) })
		if !slices.Equal(rows, want) {
			t.Errorf("machine rows:\n%+v\nwant\n%+v", rows, want)
		}
		if !strings.Contains(canary.Detail, "status 2") {
			t.Errorf("the canary's detail %q does not say how the new binary exited", canary.Detail)
		}
		b.screenshot(t, "rollout.png")

		// A step's count narrows the table to its machines.
		b.run("show the rolled-back only", chromedp.Click(chromedp.CSS(`#rollout-counts li[data-step="rolled-back"] button`)))
		b.waitFor("one row", `document.querySelectorAll('#rollout-machines tr.rollout-machine').length === 1`, 5*time.Second)
		if got := b.text("#rollout-machines tr.rollout-machine td.step"); got != wire.StepRolledBack {
			t.Errorf("narrowed to %q", got)
		}
	})

	t.Run("last update", func(t *testing.T) {
		b := br.on(t)
		b.run("open the canary", chromedp.Navigate(f.http+"/#/machine/"+canary.MachineID))
		b.waitFor("its last update", `document.querySelector('#machine-last-update')`, 10*time.Second)
		lu := canaryCard.Readiness.LastUpdate
		got := b.text("#machine-last-update")
		if !strings.HasPrefix(got, "rolled back from "+version+": "+lu.Detail) || !strings.Contains(got, "rollout "+id) {
			t.Errorf("last update %q; want it rolled back from %s: %s, in rollout %s", got, version, lu.Detail, id)
		}
		b.screenshot(t, "machine-rolled-back.png")
	})

	t.Run("rollouts list and a live abort", func(t *testing.T) {
		b := br.on(t)
		b.run("open the rollouts", chromedp.Navigate(f.http+"/#/rollouts"))
		b.waitFor("the rollout listed", `document.querySelector('#rollouts tr.rollout[data-id="`+id+`"]')`, 10*time.Second)
		b.run("open it", chromedp.Click(chromedp.CSS(`#rollouts tr.rollout[data-id="`+id+`"] a`)))
		b.waitFor("the rollout view", `document.querySelector('#rollout[data-id="`+id+`"]')`, 10*time.Second)
		b.run("mark the page", chromedp.Evaluate[chromedp.Void](`window.rmNoReload = true`))
		f.admin.meshctl("rollout", "abort", id)
		b.waitFor("aborted, pushed", `(document.querySelector('#rollout .state .word')||{}).textContent === 'aborted'`, 45*time.Second)
		b.waitFor("the waiting machine cancelled", `[...document.querySelectorAll('#rollout-machines tr.rollout-machine')].some((r) => r.dataset.id === '`+waiting.MachineID+`' && r.cells[2].textContent === 'cancelled')`, 10*time.Second)
		if ok, _ := eval[bool](b, `window.rmNoReload === true`); !ok {
			t.Error("the page reloaded")
		}
	})
}

// waveWord is how the console names a rollout wave.
func waveWord(w int) string {
	if w == 0 {
		return "canary"
	}
	return fmt.Sprintf("wave %d", w)
}

// cardOf is machine id's card as the admin's meshctl sees it.
func cardOf(t *testing.T, f *fleet, id string) wire.Card {
	t.Helper()
	for _, c := range adminCards(t, f) {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no card for machine %s", id)
	return wire.Card{}
}

// waitCard polls machine id's card until ok.
func waitCard(t *testing.T, f *fleet, id string, ok func(wire.Card) bool) wire.Card {
	t.Helper()
	var card wire.Card
	f.waitCards(func(cards []wire.Card) (bool, string) {
		for _, c := range cards {
			if c.ID == id {
				card = c
				return ok(c), fmt.Sprintf("card of %s: %+v", id, c.Readiness)
			}
		}
		return false, "no card of " + id
	})
	return card
}

// waitRollout polls `meshctl rollout status ID` until ok, for as long
// as a download, three failed starts and a rollback take (bounded).
func waitRollout(t *testing.T, f *fleet, id string, ok func(wire.Rollout) bool) wire.Rollout {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var r wire.Rollout
	for time.Now().Before(deadline) {
		r = wire.Rollout{}
		if out, err := f.admin.try("rollout", "status", id, "--json"); err == nil && json.Unmarshal([]byte(out), &r) == nil && ok(r) {
			return r
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("rollout %s never got there: %+v", id, r)
	return r
}

// nextPatch is v with its last number raised by one: a newer release.
func nextPatch(t *testing.T, v string) string {
	t.Helper()
	core, _, _ := strings.Cut(v, "-")
	i := strings.LastIndex(core, ".")
	var n int
	if _, err := fmt.Sscanf(core[i+1:], "%d", &n); err != nil || i < 0 {
		t.Fatalf("version %q: %v", v, err)
	}
	next := fmt.Sprintf("%s.%d", core[:i], n+1)
	if relpkg.CompareVersions(next, v) <= 0 {
		t.Fatalf("%s is not newer than %s", next, v)
	}
	return next
}
