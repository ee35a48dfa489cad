package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestConsole drives the console in chromium as technicians would, on the
// demo's fleet: sign in, the fleet with readiness and reachability side
// by side, an agent going offline live, terminals over WebRTC in each
// mode, the session status, and client scopes.
func TestConsole(t *testing.T) {
	f := newFleet(t)
	alice := f.technician("alice", "acme,globex", "read-only,interactive")
	bob := f.technician("bob", "acme", "read-only,interactive")
	fs01 := f.agents["acme-fs01"]
	web02 := f.agents["globex-web-02"]

	ba := newBrowser(t)
	ba.on(t).signIn(f.http, alice, "alice")

	t.Run("fleet", func(t *testing.T) {
		a := ba.on(t)
		a.waitFor("four machine rows", `document.querySelectorAll('tr.machine').length === 4`, 10*time.Second)
		cards := map[string]wire.Card{}
		for _, c := range adminCards(t, f) {
			cards[c.ID] = c
		}
		for name, ag := range f.agents {
			card := cards[ag.id]
			row := fmt.Sprintf(`tr.machine[data-id=%q]`, ag.id)
			// Readiness and reachability are separate indicators, each a
			// word beside its dot.
			if got := a.text(row + " td.readiness .word"); got != card.Readiness.State {
				t.Errorf("%s: readiness word %q, want %q", name, got, card.Readiness.State)
			}
			if got := a.text(row + " td.reach .word"); got != "online" {
				t.Errorf("%s: reachability word %q, want online", name, got)
			}
			if got := a.text(fmt.Sprintf(`section.client[data-client=%q] %s td.name`, ag.client, row)); got != name {
				t.Errorf("%s: not listed under its client %s (got %q)", name, ag.client, got)
			}
		}
		// Every control has a name, and every dot its word.
		unnamed, _ := eval[[]string](a, `[...document.querySelectorAll('input, select, button, a[href]')]
			.filter((el) => !((el.labels && el.labels.length) || el.getAttribute('aria-label') || el.textContent.trim()))
			.map((el) => el.outerHTML.slice(0, 80))`)
		if len(unnamed) > 0 {
			t.Errorf("controls without a name: %v", unnamed)
		}
		mute, _ := eval[int](a, `[...document.querySelectorAll('.dot')].filter((d) => !(d.nextElementSibling && d.nextElementSibling.textContent.trim())).length`)
		if mute > 0 {
			t.Errorf("%d dots without a word beside them", mute)
		}
		a.screenshot(t, "fleet.png")
	})

	t.Run("offline without reload", func(t *testing.T) {
		a := ba.on(t)
		kiosk := f.agents["globex-kiosk-03"]
		row := fmt.Sprintf(`tr.machine[data-id=%q]`, kiosk.id)
		before := a.text(row + " td.readiness .word")
		// A reload would lose this mark.
		a.run("mark the page", chromedp.Evaluate[chromedp.Void](`window.rmNoReload = true`))
		if !kiosk.proc.stop(syscall.SIGTERM) {
			t.Fatal("agent did not stop")
		}
		took := a.waitFor("the kiosk offline", `document.querySelector('`+row+` td.reach').dataset.online === 'false'`, 15*time.Second)
		t.Logf("overlay offline %v after the agent stopped", took.Round(time.Millisecond))
		if got := a.text(row + " td.reach .word"); got != "stopped" {
			t.Errorf("reachability word %q, want stopped: the agent said so as it went", got)
		}
		if got := a.text(row + " td.readiness .word"); got != before {
			t.Errorf("stored readiness changed from %q to %q when the agent went offline", before, got)
		}
		if ok, _ := eval[bool](a, `window.rmNoReload === true`); !ok {
			t.Error("the page reloaded")
		}
	})

	t.Run("filters and search", func(t *testing.T) {
		a := ba.on(t)
		for _, c := range []struct {
			field, value string
			want         []string
		}{
			{"#filter-readiness", "degraded", []string{"acme-fs01", "globex-web-02"}},
			{"#filter-online", "false", []string{"globex-kiosk-03"}},
			{"#filter-pending", "openssl", []string{"globex-web-02"}},
			{"#filter-q", "ubuntu", []string{"globex-web-02"}},
			{"#filter-q", "laptop", []string{"acme-laptop-07"}},
		} {
			a.setField(c.field, c.value)
			want, _ := json.Marshal(c.want)
			a.waitFor(fmt.Sprintf("%s=%s shows %v", c.field, c.value, c.want),
				`JSON.stringify([...document.querySelectorAll('tr.machine')].map((r) => r.dataset.name).sort()) === '`+string(want)+`'`, 10*time.Second)
			a.setField(c.field, "")
			a.waitFor("all four again", `document.querySelectorAll('tr.machine').length === 4`, 10*time.Second)
		}
	})

	t.Run("keyboard", func(t *testing.T) {
		a := ba.on(t)
		first := a.rows()[0]
		a.run("focus the page", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
		a.keys("/")
		if id, _ := eval[string](a, `document.activeElement.id`); id != "filter-q" {
			t.Errorf("/ focused %q, want the search field", id)
		}
		a.run("leave the field", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
		a.keys(kb.ArrowDown)
		if got, _ := eval[string](a, `document.activeElement.closest('tr.machine') ? document.activeElement.closest('tr.machine').dataset.name : document.activeElement.outerHTML`); got != first {
			t.Errorf("ArrowDown focused %q, want the first machine %q", got, first)
		}
		a.keys(kb.Enter)
		a.waitFor("the machine page by Enter", `document.querySelector('#machine') && location.hash.startsWith('#/machine/')`, 10*time.Second)
	})

	t.Run("machine page", func(t *testing.T) {
		a := ba.on(t)
		a.run("open acme-fs01", chromedp.Navigate(f.http+"/#/machine/"+fs01.id))
		a.waitFor("the stored state", `(document.querySelector('#machine-snapshot')||{}).textContent.includes('Windows Server 2019')`, 10*time.Second)
		snap := a.text("#machine-snapshot")
		for _, want := range []string{"KB5034441", "0.0.9"} {
			if !strings.Contains(snap, want) {
				t.Errorf("stored state lacks %q:\n%s", want, snap)
			}
		}
		if n, _ := eval[int](a, `document.querySelectorAll('#machine-history tbody tr').length`); n < 1 {
			t.Errorf("history has %d rows", n)
		}
		if r := a.text("#machine-readiness"); !strings.Contains(r, "degraded") || !strings.Contains(r, "behind") {
			t.Errorf("readiness panel %q lacks the state and its reason", r)
		}
	})

	var shared string // the interactive session, which allows observers
	t.Run("interactive runs a command", func(t *testing.T) {
		a := ba.on(t)
		a.run("open acme-fs01", chromedp.Navigate(f.http+"/#/machine/"+fs01.id))
		a.waitFor("the machine page", `document.querySelector('#machine') && document.querySelector('#connect')`, 10*time.Second)
		a.run("pick interactive, let others watch, and connect",
			chromedp.SetValue(chromedp.CSS("#connect-mode"), wire.ModeInteractive),
			chromedp.Click(chromedp.CSS("#connect-share")),
			chromedp.Click(chromedp.CSS("#connect")))
		a.waitFor("an active session", `(document.querySelector('#session-state')||{}).textContent === 'active'`, 20*time.Second)
		a.waitFor("a shell prompt", `(document.querySelector('#terminal .xterm-rows')||{}).textContent.includes('$')`, 10*time.Second)
		a.typeInto("echo rm-$((6*7))\r")
		a.waitFor("the command's output", `document.querySelector('#terminal .xterm-rows').textContent.includes('rm-42')`, 10*time.Second)
		if p := a.text("#session-path"); !strings.Contains(p, "direct-webrtc") {
			t.Errorf("session path %q, want direct-webrtc", p)
		}
		if m := a.text("#session-mode"); m != wire.ModeInteractive {
			t.Errorf("session mode %q", m)
		}
		a.screenshot(t, "session.png")
		// The PTY has the page's terminal size, and follows it when the
		// window changes.
		rows, _ := eval[int](a, `document.querySelectorAll('#terminal .xterm-rows > div').length`)
		a.typeInto("stty size\r")
		sizeLine := func(rows int) string { // a terminal row that is just "ROWS COLS"
			return fmt.Sprintf(`[...document.querySelectorAll('#terminal .xterm-rows > div')].some((r) => /^%d \d+\s*$/.test(r.textContent))`, rows)
		}
		a.waitFor("the PTY's size", sizeLine(rows), 10*time.Second)
		a.run("a smaller window", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 900, Height: 500, DeviceScaleFactor: 1})
			return err
		}))
		a.waitFor("fewer rows", fmt.Sprintf(`document.querySelectorAll('#terminal .xterm-rows > div').length < %d`, rows), 10*time.Second)
		smaller, _ := eval[int](a, `document.querySelectorAll('#terminal .xterm-rows > div').length`)
		a.typeInto("clear; stty size\r")
		a.waitFor("the PTY resized", sizeLine(smaller), 10*time.Second)
		a.run("the window back", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
			return err
		}))
		a.waitFor("the rows back", fmt.Sprintf(`document.querySelectorAll('#terminal .xterm-rows > div').length === %d`, rows), 10*time.Second)
		// After the clear, for the observer below to find in the backlog.
		a.typeInto("echo rm-$((6*7))\r")
		a.waitFor("the command's output again", `document.querySelector('#terminal .xterm-rows').textContent.includes('rm-42')`, 10*time.Second)
		shared = a.text("#session-id")
		if len(shared) != 32 {
			t.Fatalf("session id %q", shared)
		}
		// The agent reports the session; the broker shows it on the card.
		f.waitCards(func(cs []wire.Card) (bool, string) {
			for _, c := range cs {
				if c.ID == fs01.id {
					return c.Session != nil && c.Session.Path == wire.PathDirectWebRTC && len(c.Session.Shared) == 1,
						fmt.Sprintf("session part %+v", c.Session)
				}
			}
			return false, "no card"
		})
	})

	bb := newBrowser(t)
	bb.on(t).signIn(f.http, bob, "bob")

	t.Run("read-only watch sees command output", func(t *testing.T) {
		a, b := ba.on(t), bb.on(t)
		b.run("open acme-fs01", chromedp.Navigate(f.http+"/#/machine/"+fs01.id))
		watch := fmt.Sprintf(`button.watch[data-session=%q]`, shared)
		b.waitFor("a watch button for alice's terminal", `document.querySelector('`+watch+`')`, 10*time.Second)
		b.run("watch", chromedp.Click(chromedp.CSS(watch)))
		b.waitFor("an active read-only session", `(document.querySelector('#session-state')||{}).textContent === 'active'`, 20*time.Second)
		if m := b.text("#session-mode"); m != wire.ModeReadOnly {
			t.Errorf("watch mode %q, want read-only", m)
		}
		b.waitFor("the earlier output", `document.querySelector('#terminal .xterm-rows').textContent.includes('rm-42')`, 10*time.Second)
		a.typeInto("echo again-$((7*7))\r")
		b.waitFor("output as it happens", `document.querySelector('#terminal .xterm-rows').textContent.includes('again-49')`, 10*time.Second)
		b.typeInto("rm -rf /tmp/x\r")
		b.waitFor("typing refused", `(document.querySelector('#session-notice')||{}).textContent.includes('input refused')`, 10*time.Second)
		time.Sleep(300 * time.Millisecond)
		if strings.Contains(a.terminal(), "rm -rf") {
			t.Error("the observer's typing reached the shell")
		}
	})

	t.Run("typing in read-only is refused", func(t *testing.T) {
		b := bb.on(t)
		b.run("open a read-only terminal", chromedp.Navigate(f.http+"/#/machine/"+fs01.id))
		b.waitFor("the machine page", `document.querySelector('#connect')`, 10*time.Second)
		b.run("connect read-only",
			chromedp.SetValue(chromedp.CSS("#connect-mode"), wire.ModeReadOnly),
			chromedp.Click(chromedp.CSS("#connect")))
		b.waitFor("an active session", `(document.querySelector('#session-state')||{}).textContent === 'active'`, 20*time.Second)
		b.typeInto("touch /tmp/readymesh-ro\r")
		b.waitFor("the agent's refusal", `(document.querySelector('#session-notice')||{}).textContent.includes('read-only')`, 10*time.Second)
	})

	t.Run("input paused by the person at the machine", func(t *testing.T) {
		a := ba.on(t)
		runSessiond(t, "pause-input", "--state", fs01.dir)
		a.waitFor("the pause shown", `(document.querySelector('#session-input')||{}).textContent.includes('paused')`, 10*time.Second)
		a.typeInto("echo paused-$((2+2))\r")
		a.waitFor("input refused while paused", `(document.querySelector('#session-notice')||{}).textContent.includes('paused')`, 10*time.Second)
		runSessiond(t, "resume-input", "--state", fs01.dir)
		a.waitFor("the pause lifted", `(document.querySelector('#session-input')||{}).textContent === ''`, 10*time.Second)
		if strings.Contains(a.terminal(), "paused-4") {
			t.Error("input typed while paused ran")
		}
	})

	t.Run("scopes", func(t *testing.T) {
		b := bb.on(t)
		b.run("open the fleet", chromedp.Navigate(f.http+"/#/fleet"))
		b.waitFor("acme's two machines", `document.querySelectorAll('tr.machine').length === 2`, 10*time.Second)
		if n, _ := eval[int](b, `document.querySelectorAll('section.client[data-client="globex"]').length`); n != 0 {
			t.Error("bob sees the globex client")
		}
		b.run("open a globex machine by URL", chromedp.Navigate(f.http+"/#/machine/"+web02.id))
		b.waitFor("not found", `document.querySelector('#not-found')`, 10*time.Second)
		if strings.Contains(b.pageText(), "globex-web-02") {
			t.Error("the page names the globex machine")
		}
		b.run("open a session to it by URL", chromedp.Navigate(f.http+"/#/session?machine="+web02.id+"&mode=read-only"))
		b.waitFor("refused", `(document.querySelector('#session-notice')||{}).textContent.includes('no machine')`, 20*time.Second)
		if s := b.text("#session-state"); s != "ended" {
			t.Errorf("session state %q after a refusal", s)
		}
	})

	t.Run("relay when asked", func(t *testing.T) {
		a := ba.on(t)
		a.run("open acme-fs01", chromedp.Navigate(f.http+"/#/machine/"+fs01.id))
		a.waitFor("the machine page", `document.querySelector('#connect-path')`, 10*time.Second)
		a.run("connect through the relay",
			chromedp.SetValue(chromedp.CSS("#connect-mode"), wire.ModeInteractive),
			chromedp.SetValue(chromedp.CSS("#connect-path"), "relay"),
			chromedp.Click(chromedp.CSS("#connect")))
		a.waitFor("an active session", `(document.querySelector('#session-state')||{}).textContent === 'active'`, 20*time.Second)
		a.waitFor("the relayed path", `(document.querySelector('#session-path')||{}).textContent.includes('relayed-turn')`, 10*time.Second)
		a.typeInto("echo relayed-$((3*3))\r")
		a.waitFor("the command's output", `document.querySelector('#terminal .xterm-rows').textContent.includes('relayed-9')`, 10*time.Second)
		// Not shared: nobody else is offered to watch it.
		relayed := a.text("#session-id")
		f.waitCards(func(cs []wire.Card) (bool, string) {
			for _, c := range cs {
				if c.ID == fs01.id && c.Session != nil {
					for _, s := range c.Session.Shared {
						if s.Session == relayed {
							return false, "the relayed session is offered to watch"
						}
					}
					return strings.Contains(c.Session.Path, wire.PathRelayedTURN), "session part " + c.Session.Path
				}
			}
			return false, "no session on the card"
		})
	})

	t.Run("waiting for approval", func(t *testing.T) {
		a := ba.on(t)
		laptop := f.agents["acme-laptop-07"]
		f.admin.meshctl("consent", laptop.client+"/"+laptop.name, "--policy", "session")
		a.run("open acme-laptop-07", chromedp.Navigate(f.http+"/#/machine/"+laptop.id))
		a.waitFor("the machine page", `document.querySelector('#connect')`, 10*time.Second)
		a.run("connect", chromedp.SetValue(chromedp.CSS("#connect-mode"), wire.ModeInteractive), chromedp.Click(chromedp.CSS("#connect")))
		a.waitFor("waiting for approval", `(document.querySelector('#session-state')||{}).textContent === 'waiting-for-approval'`, 15*time.Second)
		a.screenshot(t, "waiting-for-approval.png")
		deadline := time.Now().Add(15 * time.Second)
		for {
			out, err := exec.Command(bins.sessiond, "approve", "--state", laptop.dir, "--all").CombinedOutput()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sessiond approve: %v: %s", err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		a.waitFor("active once approved", `(document.querySelector('#session-state')||{}).textContent === 'active'`, 20*time.Second)
		a.typeInto("echo approved-$((5*5))\r")
		a.waitFor("the command's output", `document.querySelector('#terminal .xterm-rows').textContent.includes('approved-25')`, 10*time.Second)
	})

	t.Run("alerts, queue and audit", func(t *testing.T) {
		a := ba.on(t)
		// The kiosk has been stopped longer than the broker's 2 s for a
		// stopped machine.
		a.run("open alerts", chromedp.Navigate(f.http+"/#/alerts"))
		a.waitFor("the kiosk's reachability alert", `[...document.querySelectorAll('#alerts tr.alert')].some((r) => r.textContent.includes('globex-kiosk-03'))`, 15*time.Second)

		a.run("open the audit log", chromedp.Navigate(f.http+"/#/audit"))
		a.waitFor("alice's sessions", `[...document.querySelectorAll('#audit tr.audit')].some((r) => r.textContent.includes('session.granted') && r.textContent.includes('alice'))`, 10*time.Second)

		a.run("open the queue", chromedp.Navigate(f.http+"/#/queue"))
		a.waitFor("the queue table", `document.querySelector('#queue')`, 10*time.Second)
		a.run("mark the page", chromedp.Evaluate[chromedp.Void](`window.rmNoReload = true`))
		script := filepath.Join(t.TempDir(), "job.sh")
		os.WriteFile(script, []byte("echo queued-from-meshctl\n"), 0o644)
		f.admin.meshctl("queue", "add", "--machine", fs01.client+"/"+fs01.name, "--script", script)
		a.waitFor("the job, pushed", `[...document.querySelectorAll('#queue tr.job')].some((r) => r.textContent.includes('acme-fs01'))`, 10*time.Second)
		a.waitFor("the job done, pushed", `[...document.querySelectorAll('#queue tr.job')].some((r) => r.textContent.includes('done'))`, 30*time.Second)
		if ok, _ := eval[bool](a, `window.rmNoReload === true`); !ok {
			t.Error("the page reloaded")
		}
		// A job for the offline kiosk waits; the console cancels it.
		kiosk := f.agents["globex-kiosk-03"]
		f.admin.meshctl("queue", "add", "--machine", kiosk.client+"/"+kiosk.name, "--script", script)
		row := `[...document.querySelectorAll('#queue tr.job')].find((r) => r.textContent.includes('globex-kiosk-03'))`
		a.waitFor("the kiosk's job, queued", row+` && `+row+`.querySelector('button.cancel')`, 10*time.Second)
		a.run("cancel it", chromedp.Evaluate[chromedp.Void](row+`.querySelector('button.cancel').click()`))
		a.waitFor("the job cancelled", row+` && `+row+`.textContent.includes('cancelled')`, 10*time.Second)
		var jobs []wire.Job
		json.Unmarshal([]byte(f.admin.meshctl("queue", "ls", "--json")), &jobs)
		for _, j := range jobs {
			if j.Machine == kiosk.client+"/"+kiosk.name && j.State != "cancelled" {
				t.Errorf("the kiosk's job is %s after the console cancelled it", j.State)
			}
		}
	})

	t.Run("api", func(t *testing.T) { checkAPI(t, f, bob, web02.id, fs01.id) })
}

// adminCards is the fleet as the admin's meshctl sees it.
func adminCards(t *testing.T, f *fleet) []wire.Card {
	var cards []wire.Card
	if err := json.Unmarshal([]byte(f.admin.meshctl("machines", "--json")), &cards); err != nil {
		t.Fatal(err)
	}
	return cards
}

func runSessiond(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(bins.sessiond, args...).CombinedOutput(); err != nil {
		t.Fatalf("sessiond %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// checkAPI checks the console API's refusals directly over HTTP: sign-in
// codes work once, requests that change something need the CSRF token
// and the same origin, and a technician's scopes hold for every API,
// including the live-update stream.
func checkAPI(t *testing.T, f *fleet, c *tech, hidden, visible string) {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	call := func(method, path, csrf string, body any, hdr map[string]string) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, f.http+path, rd)
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, raw
	}
	if code, _ := call("GET", "/api/machines", "", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("machines without signing in: %d", code)
	}
	link := c.consoleLink()
	var me struct{ CSRF string }
	code, raw := call("POST", "/api/login", "", map[string]string{"code": link.Code}, nil)
	if code != http.StatusOK || json.Unmarshal(raw, &me) != nil || me.CSRF == "" {
		t.Fatalf("sign in: %d %s", code, raw)
	}
	if code, _ := call("POST", "/api/login", "", map[string]string{"code": link.Code}, nil); code != http.StatusUnauthorized {
		t.Errorf("a used code signed in again: %d", code)
	}
	if code, _ := call("POST", "/api/login", "", map[string]string{"code": "rmc1_forged"}, nil); code != http.StatusUnauthorized {
		t.Errorf("a forged code: %d", code)
	}
	if code, raw := call("GET", "/api/machines/"+visible, "", nil, nil); code != http.StatusOK {
		t.Errorf("a visible machine: %d %s", code, raw)
	}
	if code, _ := call("GET", "/api/machines/"+hidden, "", nil, nil); code != http.StatusNotFound {
		t.Errorf("a machine outside the technician's clients: %d, want 404", code)
	}
	_, raw = call("GET", "/api/machines", "", nil, nil)
	if bytes.Contains(raw, []byte(hidden)) || !bytes.Contains(raw, []byte(visible)) {
		t.Errorf("machine list does not match the technician's clients: %s", raw)
	}
	if code, _ := call("GET", "/api/machines?online=maybe", "", nil, nil); code != http.StatusBadRequest {
		t.Errorf("a bad filter: %d, want 400", code)
	}
	open := map[string]string{"machine": hidden, "mode": "read-only", "sdp": "v=0"}
	if code, _ := call("POST", "/api/sessions", "", open, nil); code != http.StatusForbidden {
		t.Errorf("a session request without the CSRF token: %d, want 403", code)
	}
	if code, _ := call("POST", "/api/sessions", me.CSRF, open, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Errorf("a cross-origin session request: %d, want 403", code)
	}
	if code, raw := call("POST", "/api/sessions", me.CSRF, open, nil); code != http.StatusBadRequest {
		t.Errorf("a session request with a bad offer: %d %s, want 400", code, raw)
	}
	// Another client's job cannot be touched, or even confirmed to exist.
	var jobs []wire.Job
	json.Unmarshal([]byte(f.admin.meshctl("queue", "ls", "--json")), &jobs)
	tried := 0
	for _, j := range jobs {
		if strings.HasPrefix(j.Machine, "globex/") {
			tried++
			if code, raw := call("POST", "/api/queue/"+j.ID+"/cancel", me.CSRF, nil, nil); code != http.StatusNotFound {
				t.Errorf("cancel of another client's job: %d %s, want 404", code, raw)
			}
		}
	}
	if tried == 0 {
		t.Error("no globex job to try (the queue subtest makes one)")
	}

	// The live stream: a change on a hidden machine sends nothing about
	// it. Restarting the stopped kiosk (globex) makes one.
	req, _ := http.NewRequest("GET", f.http+"/api/events", nil)
	res, err := hc.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("events: %v %v", err, res)
	}
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 64<<10)
		var all []byte
		for {
			n, err := res.Body.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				got <- all
				return
			}
		}
	}()
	f.startAgent(f.agents["globex-kiosk-03"])
	f.waitCards(func(cs []wire.Card) (bool, string) {
		for _, c := range cs {
			if c.ID == f.agents["globex-kiosk-03"].id {
				return c.Reachability.Online, "kiosk offline"
			}
		}
		return false, "no kiosk"
	})
	time.Sleep(time.Second)
	res.Body.Close()
	stream := <-got
	if !bytes.Contains(stream, []byte("event: hello")) {
		t.Errorf("no hello on the stream: %q", stream)
	}
	for _, ag := range f.agents {
		if ag.client == "globex" && bytes.Contains(stream, []byte(ag.id)) {
			t.Errorf("the stream told bob about %s:\n%s", ag.name, stream)
		}
	}

	if code, _ := call("POST", "/api/logout", me.CSRF, nil, nil); code != http.StatusNoContent {
		t.Errorf("logout: %d", code)
	}
	if code, _ := call("GET", "/api/me", "", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("still signed in after logout: %d", code)
	}
}
