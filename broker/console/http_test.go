package console

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/session"
	"github.com/readymesh/readymesh/peer/wire"
)

// slowSessions answers every session request after wait, as an agent
// does once the person at the machine consents, unless the request's
// context ends first.
type slowSessions struct {
	wait time.Duration

	mu     sync.Mutex
	ctxErr error // mu guards; the context's error when a request gave up
}

func (s *slowSessions) Request(ctx context.Context, r session.Request) (wire.SessionResult, *wire.Error) {
	select {
	case <-time.After(s.wait):
		return wire.SessionResult{Session: "s1", Machine: r.Args.Machine}, nil
	case <-ctx.Done():
		s.mu.Lock()
		s.ctxErr = ctx.Err()
		s.mu.Unlock()
		return wire.SessionResult{}, wire.Errorf(wire.CodeUnavailable, "withdrawn")
	}
}

// testServer serves a console on loopback as the broker does: Bounded,
// with the server's read timeout, both at timeout. It returns the base
// URL and a client signed in as the admin, and its CSRF token.
func testServer(t *testing.T, sessions Sessions, timeout time.Duration) (string, *http.Client, string) {
	t.Helper()
	st := fleettest.Open(t)
	now := time.Now()
	if err := st.SetAdminHash(wire.HashSecret(wire.NewSecret()), now); err != nil {
		t.Fatal(err)
	}
	key := fleettest.PeerID(t).String()
	if _, err := st.Login("", key, true, now); err != nil {
		t.Fatal(err)
	}
	c := New(Config{Name: "test", WriteTimeout: timeout}, Deps{Sessions: sessions, Store: st,
		Audit: audit.New(st, nil, nil), Changes: NewChanges(), Refused: func(string, string) {}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Bounded(c.Handler(http.NewServeMux()), timeout),
		ReadHeaderTimeout: timeout, ReadTimeout: timeout}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ln) })
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	base := "http://" + ln.Addr().String()
	code, werr := c.TestOnlyCode(key)
	if werr != nil {
		t.Fatal(werr)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	status, raw := post(t, hc, base+"/api/login", "", map[string]string{"code": code})
	var me struct{ CSRF string }
	if status != http.StatusOK || json.Unmarshal(raw, &me) != nil || me.CSRF == "" {
		t.Fatalf("sign in: %d %s", status, raw)
	}
	return base, hc, me.CSRF
}

// post sends body (JSON, or raw bytes as they are) and returns the status
// and the reply.
func post(t *testing.T, hc *http.Client, url, csrf string, body any) (int, []byte) {
	t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		raw, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestSessionRequestOutlivesDeadlines: a session request that waits for
// consent far past the server's read timeout and the write deadline
// Bounded gives it is neither withdrawn nor left unanswered.
func TestSessionRequestOutlivesDeadlines(t *testing.T) {
	const timeout = 100 * time.Millisecond
	s := &slowSessions{wait: 5 * timeout}
	base, hc, csrf := testServer(t, s, timeout)
	status, raw := post(t, hc, base+"/api/sessions", csrf, sessionBody{Machine: "acme/desk", Mode: wire.ModeReadOnly, SDP: "v=0"})
	s.mu.Lock()
	ctxErr := s.ctxErr
	s.mu.Unlock()
	if ctxErr != nil {
		t.Fatalf("the request was withdrawn while it waited: %v", ctxErr)
	}
	var got struct{ Session string }
	if status != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.Session != "s1" {
		t.Fatalf("session request after a long wait: %d %s, want 200 and session s1", status, raw)
	}
}

// TestBodyBounds: a body over its route's bound is refused as too large,
// unread past the bound, on the sign-in and on session requests.
func TestBodyBounds(t *testing.T) {
	base, hc, csrf := testServer(t, &slowSessions{}, 5*time.Second)
	big := func(n int) []byte { return []byte(`{"code": "` + strings.Repeat("x", n) + `"}`) }
	for _, tc := range []struct {
		name, path string
		body       []byte
		want       int
	}{
		{"sign-in within its bound", "/api/login", big(maxLoginBody - 64), http.StatusUnauthorized},
		{"sign-in over its bound", "/api/login", big(maxLoginBody), http.StatusRequestEntityTooLarge},
		{"session request over MaxBody", "/api/sessions", big(MaxBody), http.StatusRequestEntityTooLarge},
		{"malformed sign-in", "/api/login", []byte(`{"code": `), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := post(t, hc, base+tc.path, csrf, tc.body)
			if status != tc.want {
				t.Errorf("POST %s with %d bytes: %d %s, want %d", tc.path, len(tc.body), status, raw, tc.want)
			}
			var e struct{ Error *wire.Error }
			if json.Unmarshal(raw, &e) != nil || e.Error == nil || e.Error.Message == "" {
				t.Errorf("the refusal carries no error message: %s", raw)
			}
		})
	}
}

// TestAdmin: Admin is true only for the live sign-in of an admin.
func TestAdmin(t *testing.T) {
	st := fleettest.Open(t)
	now := time.Now()
	st.SetAdminHash(wire.HashSecret(wire.NewSecret()), now)
	adminKey := fleettest.PeerID(t).String()
	if _, err := st.Login("", adminKey, true, now); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateClient("acme", now); err != nil {
		t.Fatal(err)
	}
	loginHash := wire.HashSecret(wire.NewSecret())
	if err := st.CreateTechnician(wire.Technician{Name: "t1", Clients: []string{"acme"}, Modes: []string{wire.ModeReadOnly}},
		loginHash, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	techKey := fleettest.PeerID(t).String()
	if _, err := st.Login(loginHash, techKey, false, now); err != nil {
		t.Fatal(err)
	}
	c := New(Config{}, Deps{Store: st, Audit: audit.New(st, nil, nil), Changes: NewChanges(), Refused: func(string, string) {}})
	signIn := func(key string) *http.Request {
		code, werr := c.TestOnlyCode(key)
		if werr != nil {
			t.Fatal(werr)
		}
		raw, _ := json.Marshal(map[string]string{"code": code})
		rec := httptest.NewRecorder()
		c.login(rec, mustRequest(t, http.MethodPost, "/api/login", raw))
		req := mustRequest(t, http.MethodGet, "/healthz", nil)
		for _, ck := range rec.Result().Cookies() {
			req.AddCookie(ck)
		}
		return req
	}
	if !c.Admin(signIn(adminKey)) {
		t.Error("Admin is false for the admin's sign-in")
	}
	if c.Admin(signIn(techKey)) {
		t.Error("Admin is true for a technician of one client")
	}
	if c.Admin(mustRequest(t, http.MethodGet, "/healthz", nil)) {
		t.Error("Admin is true without a sign-in")
	}
	forged := mustRequest(t, http.MethodGet, "/healthz", nil)
	forged.AddCookie(&http.Cookie{Name: cookieName, Value: "forged"})
	if c.Admin(forged) {
		t.Error("Admin is true for a forged cookie")
	}
}

func mustRequest(t *testing.T, method, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.RemoteAddr = "192.0.2.1:1234"
	return req
}
