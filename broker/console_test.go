package broker

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/console"
	"github.com/readymesh/readymesh/peer/wire"
)

// consoleClient is a browser's side of the console API, without a browser.
type consoleClient struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func newConsoleClient(t *testing.T, tb *testBroker) *consoleClient {
	jar, _ := cookiejar.New(nil)
	return &consoleClient{t: t, base: "http://" + tb.httpLn.Addr().String(), hc: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (c *consoleClient) do(method, path, body string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var sb strings.Builder
	bufio.NewReader(res.Body).WriteTo(&sb)
	return res.StatusCode, sb.String()
}

// signInCode issues a sign-in code for technician client c, as meshctl console
// does. A broker built without the console's assets refuses; then the
// code is placed directly, so the API is tested either way.
func signInCode(t *testing.T, tb *testBroker, c *testClient) string {
	t.Helper()
	raw, werr := c.tech(wire.OpConsoleLogin, nil)
	if !console.Built() {
		wantCode(t, werr, wire.CodeUnavailable)
		t.Log("console assets not built: OpConsoleLogin refused as it should; placing a code directly")
		code, werr := tb.console.TestOnlyCode(c.ID())
		if werr != nil {
			t.Fatal(werr)
		}
		return code
	}
	if werr != nil {
		t.Fatalf("console.login: %v", werr)
	}
	var l wire.ConsoleLogin
	json.Unmarshal(raw, &l)
	if !strings.HasSuffix(l.URL, "/#login="+l.Code) || !strings.HasPrefix(l.Code, "rmc1_") {
		t.Fatalf("sign-in link %q, code %q", l.URL, l.Code)
	}
	return l.Code
}

func TestConsoleSignIn(t *testing.T) {
	clock := new(testClock)
	tb := startBroker(t, func(c *Config) { c.Now = clock.Now })
	admin, _ := tb.fleet(t)
	before := tb.state(t)

	c := newConsoleClient(t, tb)
	for _, body := range []string{"", "{", `{"code": ""}`, `{"code": "rmc1_unknown"}`, strings.Repeat("x", 10000)} {
		if code, _ := c.do("POST", "/api/login", body); code != http.StatusBadRequest && code != http.StatusUnauthorized {
			t.Errorf("login with %.20q: %d", body, code)
		}
	}
	// An expired code is refused, and used up by the attempt.
	old := signInCode(t, tb, admin)
	clock.Advance(console.CodeTTL + time.Second)
	if code, body := c.do("POST", "/api/login", `{"code":"`+old+`"}`); code != http.StatusUnauthorized {
		t.Errorf("expired code: %d %s", code, body)
	}
	sameState(t, before, tb.state(t))

	code := signInCode(t, tb, admin)
	status, body := c.do("POST", "/api/login", `{"code":"`+code+`"}`)
	if status != http.StatusOK {
		t.Fatalf("sign in: %d %s", status, body)
	}
	var me struct {
		Technician wire.Technician
		CSRF       string
	}
	json.Unmarshal([]byte(body), &me)
	if me.Technician.Name != "admin" || len(me.Technician.Keys) != 0 || me.CSRF == "" {
		t.Fatalf("sign-in reply %s", body)
	}
	if status, _ := c.do("GET", "/api/me", ""); status != http.StatusOK {
		t.Fatalf("me: %d", status)
	}
	if status, _ := c.do("GET", "/api/nothing-here", ""); status != http.StatusNotFound {
		t.Errorf("unknown API: %d", status)
	}
	if status, _ := c.do("DELETE", "/", ""); status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /: %d", status)
	}
	var audit []wire.AuditEntry
	admin.mustTech(wire.OpAudit, wire.AuditArgs{}, &audit)
	if len(audit) == 0 || audit[0].Event != wire.AuditConsoleLogin || audit[0].Technician != "admin" {
		t.Errorf("the sign-in is not in the audit log: %+v", audit)
	}
	// A working day later the session is over.
	clock.Advance(console.SessionTTL)
	if status, _ := c.do("GET", "/api/me", ""); status != http.StatusUnauthorized {
		t.Errorf("me after the session's lifetime: %d", status)
	}
}

// TestConsoleEvents: a check-in pushes the machine's card to a signed-in
// stream at once, with no request from the page.
func TestConsoleEvents(t *testing.T) {
	tb := startBroker(t)
	admin, tok := tb.fleet(t)
	ag := tb.agent(t, tok, "pc-1")
	c := newConsoleClient(t, tb)
	if status, body := c.do("POST", "/api/login", `{"code":"`+signInCode(t, tb, admin)+`"}`); status != http.StatusOK {
		t.Fatalf("sign in: %d %s", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/api/events", nil)
	res, err := c.hc.Do(req)
	if err != nil || res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %v %+v", err, res)
	}
	defer res.Body.Close()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l := <-lines; l != "event: hello" {
		t.Fatalf("first line %q", l)
	}
	start := time.Now()
	if ack := ag.checkIn(1, testSnapshot("pc-1")); ack.Error != nil {
		t.Fatal(ack.Error)
	}
	event := ""
	for l := range lines {
		if e, ok := strings.CutPrefix(l, "event: "); ok {
			event = e
			continue
		}
		if d, ok := strings.CutPrefix(l, "data: "); ok && event == "card" {
			var card wire.Card
			if err := json.Unmarshal([]byte(d), &card); err != nil {
				t.Fatal(err)
			}
			if card.ID == ag.ID() && card.Readiness.LastCheckIn != nil {
				t.Logf("card pushed %v after the check-in", time.Since(start).Round(time.Millisecond))
				return
			}
		}
	}
	t.Fatal("the stream ended without the machine's card")
}

// TestConsoleSignOutEndsStreams: signing out ends the sign-in's open
// event streams at once, and a technician's codes beyond the per-key
// bound push out that technician's own oldest.
func TestConsoleSignOutEndsStreams(t *testing.T) {
	tb := startBroker(t)
	admin, _ := tb.fleet(t)
	c := newConsoleClient(t, tb)
	status, body := c.do("POST", "/api/login", `{"code":"`+signInCode(t, tb, admin)+`"}`)
	if status != http.StatusOK {
		t.Fatalf("sign in: %d %s", status, body)
	}
	var me struct{ CSRF string }
	json.Unmarshal([]byte(body), &me)
	c.csrf = me.CSRF
	req, _ := http.NewRequest("GET", c.base+"/api/events", nil)
	res, err := c.hc.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("events: %v %+v", err, res)
	}
	defer res.Body.Close()
	ended := make(chan string, 1)
	go func() {
		var all strings.Builder
		bufio.NewReader(res.Body).WriteTo(&all)
		ended <- all.String()
	}()
	if status, _ := c.do("POST", "/api/logout", ""); status != http.StatusNoContent {
		t.Fatalf("logout: %d", status)
	}
	select {
	case all := <-ended:
		if !strings.Contains(all, "event: signed-out") {
			t.Errorf("stream ended without signed-out: %q", all)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream outlived its sign-in")
	}

	var first string
	for i := range console.CodesPerKey + 1 {
		code := signInCode(t, tb, admin)
		if i == 0 {
			first = code
		}
	}
	if status, _ := c.do("POST", "/api/login", `{"code":"`+first+`"}`); status != http.StatusUnauthorized {
		t.Errorf("the technician's oldest code beyond the bound still works: %d", status)
	}
}
