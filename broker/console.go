package broker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/console"
	"github.com/readymesh/readymesh/mesh/rtc"
	"github.com/readymesh/readymesh/peer/wire"
)

// The web console is served on the broker's HTTP address, from assets
// embedded in the binary (package console), with a JSON API under /api.
//
// Sign-in: a technician's credential is the key meshctl holds. `meshctl
// console` asks this broker, over the authenticated bridge, for a
// one-time code (OpConsoleLogin); the browser trades it for a session
// cookie. The broker never stores a password, and the code is good once,
// for two minutes, on the broker that issued it.
//
// Every API call runs the same technician operation meshctl runs
// (techOp), with the technician looked up afresh from the store on each
// request: scopes, modes and removal apply at once, and a machine outside
// the technician's clients is "not found", whether listed or named in a
// URL.
//
// CSRF: the cookie is SameSite=Strict and HttpOnly; every state-changing
// request must also carry the session's CSRF token in X-CSRF-Token and
// pass net/http's cross-origin protection (Sec-Fetch-Site or Origin).

// Console limits and lifetimes.
const (
	// consoleCodeTTL is how long a sign-in code from meshctl console is
	// good for.
	consoleCodeTTL = 2 * time.Minute
	// consoleSessionTTL is how long a console sign-in lasts: a working
	// day. The technician signs in again with meshctl console.
	consoleSessionTTL = 12 * time.Hour
	// consoleMaxSessions bounds signed-in browsers (and codes) held in
	// memory; the oldest go first.
	consoleMaxSessions = 10000
	// consoleMaxStreams bounds open live-update streams.
	consoleMaxStreams = 2000
	// consoleCoalesce is how long a live-update stream gathers changes
	// before it sends, so a burst of check-ins costs one comparison.
	consoleCoalesce = 250 * time.Millisecond
	// consoleRefresh re-evaluates a stream's view even without a change,
	// for states that age (stale snapshots, alert windows), and keeps
	// proxies from closing an idle stream.
	consoleRefresh = 30 * time.Second
	cookieName     = "rm_console"
)

// webConsole holds sign-in codes and signed-in browsers. Both are in
// memory: a broker restart signs everyone out, which is the safe failure.
//
// Bounds: each technician key holds at most consoleCodesPerKey codes and
// consoleSessionsPerKey sign-ins (its own oldest go first), and the
// broker at most consoleMaxSessions of both. At that bound new sign-ins
// are refused rather than anyone else's ended: one technician cannot sign
// the others out.
type webConsole struct {
	b    *Broker
	done chan struct{} // closed when the broker stops: streams end
	// rate limits meshctl console per technician key, and failed sign-ins
	// per remote address.
	rate sessionRate

	mu       sync.Mutex
	codes    map[string]consoleCode // by SHA-256 of the code
	sessions map[string]*webSession // by SHA-256 of the cookie
	streams  int
	pruned   time.Time

	viewMu sync.Mutex
	view   *fleetView // the newest computed view, shared by streams
}

type consoleCode struct {
	key     string // the technician's peer ID
	expires time.Time
}

type webSession struct {
	key     string // the technician's peer ID: the technician is looked up per request
	csrf    string
	expires time.Time
	streams int           // open event streams; webConsole.mu guards it
	ended   chan struct{} // closed when signed out, expired or removed: its streams end
}

// Per-key bounds.
const (
	consoleCodesPerKey    = 5
	consoleSessionsPerKey = 20
	consoleStreamsPerKey  = 4 // per sign-in: a few tabs
)

func newWebConsole(b *Broker) *webConsole {
	return &webConsole{b: b, done: make(chan struct{}), codes: map[string]consoleCode{}, sessions: map[string]*webSession{}}
}

func secret(prefix string) string {
	var raw [32]byte
	rand.Read(raw[:])
	return prefix + base64.RawURLEncoding.EncodeToString(raw[:])
}

func hashed(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// endSession removes a sign-in and ends its streams. Called with mu held.
func (c *webConsole) endSession(k string) {
	if ws := c.sessions[k]; ws != nil {
		delete(c.sessions, k)
		close(ws.ended)
	}
}

// prune drops expired codes and sign-ins, at most once a second. Called
// with mu held.
func (c *webConsole) prune(now time.Time) {
	if now.Sub(c.pruned) < time.Second && now.After(c.pruned) {
		return
	}
	c.pruned = now
	for k, v := range c.codes {
		if !now.Before(v.expires) {
			delete(c.codes, k)
		}
	}
	for k, v := range c.sessions {
		if !now.Before(v.expires) {
			c.endSession(k)
		}
	}
}

// oldestOf returns the key of the entry of technician key that expires
// first among m, and how many key has.
func oldestOf[V any](m map[string]V, key string, of func(V) (string, time.Time)) (string, int) {
	oldest, at, n := "", time.Time{}, 0
	for k, v := range m {
		owner, exp := of(v)
		if owner != key {
			continue
		}
		n++
		if oldest == "" || exp.Before(at) {
			oldest, at = k, exp
		}
	}
	return oldest, n
}

// issueCode answers OpConsoleLogin for the technician with key techID.
func (b *Broker) issueCode(t *wire.Technician, techID peer.ID) (wire.ConsoleLogin, *wire.Error) {
	if b.httpLn == nil {
		return wire.ConsoleLogin{}, wire.Errorf(wire.CodeUnavailable, "this broker serves no web console (its HTTP address is off)")
	}
	if !console.Built() {
		return wire.ConsoleLogin{}, wire.Errorf(wire.CodeUnavailable, "this broker was built without the console's assets: build it with make build")
	}
	now := b.cfg.Now()
	c := b.console
	if !c.rate.allow("code:"+string(techID), now) {
		return wire.ConsoleLogin{}, wire.Errorf(wire.CodeUnavailable, "too many console sign-in links asked for; wait a moment")
	}
	code, werr := c.newCode(techID.String(), now)
	if werr != nil {
		b.log.Warn("console sign-in code refused", "technician", t.Name, "err", werr.Message)
		return wire.ConsoleLogin{}, werr
	}
	b.log.Info("console sign-in code issued", "technician", t.Name)
	return wire.ConsoleLogin{Code: code, URL: b.consoleURL() + "/#login=" + code, Expires: now.Add(consoleCodeTTL).UTC()}, nil
}

// newCode makes a sign-in code for technician key, within the bounds.
func (c *webConsole) newCode(key string, now time.Time) (string, *wire.Error) {
	code := secret("rmc1_")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prune(now)
	if old, n := oldestOf(c.codes, key, func(v consoleCode) (string, time.Time) { return v.key, v.expires }); n >= consoleCodesPerKey {
		delete(c.codes, old)
	}
	if len(c.codes)+len(c.sessions) >= consoleMaxSessions {
		return "", wire.Errorf(wire.CodeUnavailable, "this broker holds %d console sign-ins; try again later", consoleMaxSessions)
	}
	c.codes[hashed(code)] = consoleCode{key: key, expires: now.Add(consoleCodeTTL)}
	return code, nil
}

// consoleURL is the console's address as technicians reach it.
func (b *Broker) consoleURL() string {
	if b.cfg.ConsoleURL != "" {
		return strings.TrimRight(b.cfg.ConsoleURL, "/")
	}
	host, port, _ := net.SplitHostPort(b.httpLn.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// consoleHandler serves the console and its API.
func (b *Broker) consoleHandler(mux *http.ServeMux) http.Handler {
	c := b.console
	assets := console.Handler()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		assets.ServeHTTP(w, r)
	})
	mux.HandleFunc("POST /api/login", c.login)
	api := func(pattern string, h func(w http.ResponseWriter, r *http.Request, a *authed)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			a, ok := c.auth(w, r)
			if !ok {
				return
			}
			rec := &statusWriter{ResponseWriter: w}
			h(rec, r, a)
			if rec.status >= 400 {
				c.b.metrics.refused.WithLabelValues("console:"+pattern, strconv.Itoa(rec.status)).Inc() // the pattern, not the path: bounded labels
				c.b.log.Info("console request refused", "technician", a.tech.Name, "method", r.Method,
					"path", r.URL.Path, "status", rec.status)
			}
		})
	}
	api("POST /api/logout", c.logout)
	api("GET /api/me", c.me)
	api("GET /api/machines", c.machines)
	api("GET /api/machines/{id}", c.machine)
	api("GET /api/alerts", c.op(wire.OpAlerts, nil))
	api("GET /api/queue", c.op(wire.OpQueueList, func(r *http.Request) any {
		return wire.QueueListArgs{Machine: r.URL.Query().Get("machine"), State: r.URL.Query().Get("state")}
	}))
	api("GET /api/audit", c.op(wire.OpAudit, func(r *http.Request) any {
		n, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		return wire.AuditArgs{Limit: n, Machine: r.URL.Query().Get("machine")}
	}))
	api("POST /api/queue/{id}/cancel", c.op(wire.OpQueueCancel, func(r *http.Request) any {
		return wire.JobArgs{ID: r.PathValue("id")}
	}))
	api("GET /api/ice", c.ice)
	api("POST /api/sessions", c.openSession)
	api("GET /api/events", c.events)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, wire.Errorf(wire.CodeNotFound, "no API %s %s", r.Method, r.URL.Path))
	})
	return http.NewCrossOriginProtection().Handler(mux)
}

// authed is a signed-in request: the technician as stored now.
type authed struct {
	ws   *webSession
	tech wire.Technician
	id   peer.ID
}

// auth finds the request's console session and its technician, and for
// a request that changes something, checks its CSRF token.
func (c *webConsole) auth(w http.ResponseWriter, r *http.Request) (*authed, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		writeErr(w, wire.Errorf(wire.CodeUnauthorized, "not signed in: run meshctl console and open the link it prints"))
		return nil, false
	}
	key := hashed(ck.Value)
	now := c.b.cfg.Now()
	c.mu.Lock()
	ws := c.sessions[key]
	if ws != nil && !now.Before(ws.expires) {
		c.endSession(key)
		ws = nil
	}
	c.mu.Unlock()
	if ws == nil {
		writeErr(w, wire.Errorf(wire.CodeUnauthorized, "signed out or expired: run meshctl console for a new link"))
		return nil, false
	}
	t, err := c.b.store.TechnicianByKey(ws.key)
	if err != nil {
		c.mu.Lock()
		c.endSession(key)
		c.mu.Unlock()
		c.b.log.Warn("console session of a removed technician key ended", "key", ws.key)
		writeErr(w, wire.Errorf(wire.CodeUnauthorized, "this technician's key is no longer known to the broker"))
		return nil, false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(ws.csrf)) != 1 {
			c.b.log.Warn("console request refused: CSRF token missing or wrong", "technician", t.Name, "path", r.URL.Path)
			writeErr(w, wire.Errorf(wire.CodeForbidden, "missing or wrong X-CSRF-Token"))
			return nil, false
		}
	}
	id, _ := peer.Decode(ws.key)
	return &authed{ws: ws, tech: t, id: id}, true
}

func (c *webConsole) login(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := c.b.cfg.Now()
	if !c.rate.allow("login:"+host, now) {
		c.b.metrics.refused.WithLabelValues("console:login", "rate").Inc()
		writeErr(w, wire.Errorf(wire.CodeUnavailable, "too many sign-in attempts from this address; wait a moment"))
		return
	}
	var body struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil || body.Code == "" {
		c.b.log.Info("console sign-in refused: malformed body", "remote", r.RemoteAddr)
		writeErr(w, wire.Errorf(wire.CodeBadRequest, "the body must be {\"code\": \"rmc1_…\"}"))
		return
	}
	h := hashed(strings.TrimSpace(body.Code))
	c.mu.Lock()
	c.prune(now)
	code, ok := c.codes[h]
	delete(c.codes, h)
	c.mu.Unlock()
	if !ok || !now.Before(code.expires) {
		c.b.metrics.refused.WithLabelValues("console:login", wire.CodeUnauthorized).Inc()
		c.b.log.Warn("console sign-in refused: unknown, used or expired code", "remote", r.RemoteAddr)
		writeErr(w, wire.Errorf(wire.CodeUnauthorized, "this sign-in code is unknown, used or expired: run meshctl console for a new one"))
		return
	}
	t, err := c.b.store.TechnicianByKey(code.key)
	if err != nil {
		writeErr(w, wire.Errorf(wire.CodeUnauthorized, "this technician's key is no longer known to the broker"))
		return
	}
	cookie := secret("")
	ws := &webSession{key: code.key, csrf: secret(""), expires: now.Add(consoleSessionTTL), ended: make(chan struct{})}
	c.mu.Lock()
	// This browser's previous sign-in, if any, ends: one per browser.
	if old, err := r.Cookie(cookieName); err == nil {
		c.endSession(hashed(old.Value))
	}
	if old, n := oldestOf(c.sessions, code.key, func(v *webSession) (string, time.Time) { return v.key, v.expires }); n >= consoleSessionsPerKey {
		c.endSession(old)
	}
	if len(c.codes)+len(c.sessions) >= consoleMaxSessions {
		c.mu.Unlock()
		c.b.log.Warn("console sign-in refused: the broker holds its maximum of sign-ins", "max", consoleMaxSessions)
		writeErr(w, wire.Errorf(wire.CodeUnavailable, "this broker holds %d console sign-ins; try again later", consoleMaxSessions))
		return
	}
	c.sessions[hashed(cookie)] = ws
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: cookie, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.b.secureCookies(r), Expires: ws.expires})
	c.b.log.Info("console sign-in", "technician", t.Name, "remote", r.RemoteAddr)
	c.b.audit(wire.AuditEntry{Event: wire.AuditConsoleLogin, Technician: t.Name, Detail: "from " + r.RemoteAddr})
	writeJSON(w, http.StatusOK, map[string]any{"technician": publicTech(t), "csrf": ws.csrf, "broker": c.b.cfg.Name})
}

// secureCookies says whether the console's cookie is for HTTPS only: the
// request came over TLS, or the console's URL is https (a TLS proxy in
// front of the broker).
func (b *Broker) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(b.cfg.ConsoleURL, "https://")
}

func (c *webConsole) logout(w http.ResponseWriter, r *http.Request, a *authed) {
	c.mu.Lock()
	for k, v := range c.sessions {
		if v == a.ws {
			c.endSession(k)
		}
	}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: c.b.secureCookies(r), MaxAge: -1})
	w.WriteHeader(http.StatusNoContent)
}

// publicTech is the technician without its keys.
func publicTech(t wire.Technician) wire.Technician {
	t.Keys = nil
	return t
}

func (c *webConsole) me(w http.ResponseWriter, r *http.Request, a *authed) {
	writeJSON(w, http.StatusOK, map[string]any{"technician": publicTech(a.tech), "csrf": a.ws.csrf, "broker": c.b.cfg.Name})
}

// call runs a technician operation as meshctl would.
func (c *webConsole) call(ctx context.Context, a *authed, op string, args any) (any, *wire.Error) {
	req := &wire.Request{Op: op}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			return nil, wire.Errorf(wire.CodeInternal, "%v", err)
		}
		req.Args = raw
	}
	return c.b.techOp(ctx, &a.tech, a.id, req)
}

// op serves a read-only technician operation, its arguments from args.
func (c *webConsole) op(name string, args func(*http.Request) any) func(http.ResponseWriter, *http.Request, *authed) {
	return func(w http.ResponseWriter, r *http.Request, a *authed) {
		var v any
		if args != nil {
			v = args(r)
		}
		res, werr := c.call(r.Context(), a, name, v)
		if werr != nil {
			writeErr(w, werr)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// machineArgs reads the fleet filters of a console URL.
func machineArgs(q url.Values) (wire.MachinesArgs, *wire.Error) {
	a := wire.MachinesArgs{Client: q.Get("client"), Readiness: q.Get("readiness"), PendingUpdate: q.Get("pending_update")}
	switch q.Get("online") {
	case "":
	case "true", "false":
		on := q.Get("online") == "true"
		a.Online = &on
	default:
		return a, wire.Errorf(wire.CodeBadRequest, "online must be true or false")
	}
	return a, nil
}

func (c *webConsole) machines(w http.ResponseWriter, r *http.Request, a *authed) {
	args, werr := machineArgs(r.URL.Query())
	if werr == nil {
		var res any
		if res, werr = c.call(r.Context(), a, wire.OpMachines, args); werr == nil {
			writeJSON(w, http.StatusOK, res)
			return
		}
	}
	writeErr(w, werr)
}

func (c *webConsole) machine(w http.ResponseWriter, r *http.Request, a *authed) {
	res, werr := c.call(r.Context(), a, wire.OpShow, wire.ShowArgs{Machine: r.PathValue("id")})
	if werr != nil {
		writeErr(w, werr)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// iceServer is RTCIceServer as browsers take it.
type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ice answers what a browser needs before it gathers candidates: the
// broker's STUN server and, when it relays, TURN credentials for this
// technician.
func (c *webConsole) ice(w http.ResponseWriter, r *http.Request, a *authed) {
	writeJSON(w, http.StatusOK, map[string]any{"iceServers": c.b.browserICE(r, a.id)})
}

func (b *Broker) browserICE(r *http.Request, techID peer.ID) []iceServer {
	out := []iceServer{}
	if b.stunConn == nil {
		return out
	}
	ua := b.stunConn.LocalAddr().(*net.UDPAddr)
	host := ua.IP.String()
	if b.cfg.TURNIP != "" {
		host = b.cfg.TURNIP
	} else if ua.IP.IsUnspecified() {
		// Reached on the address the browser used for this page.
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
	}
	hp := net.JoinHostPort(host, strconv.Itoa(ua.Port))
	out = append(out, iceServer{URLs: []string{"stun:" + hp}})
	if u, p := b.turnCredentials(techID.String()); u != "" {
		out = append(out, iceServer{URLs: []string{"turn:" + hp + "?transport=udp"}, Username: u, Credential: p})
	}
	return out
}

// consoleSession is what the browser sends to open a session.
type consoleSession struct {
	Machine string `json:"machine"`
	Mode    string `json:"mode"`
	SDP     string `json:"sdp"`
}

// openSession opens a WebRTC session from the browser: the same checks,
// grant, consent and audit as meshctl connect, with the browser's DTLS
// fingerprints bound into the grant in place of a technician signature.
func (c *webConsole) openSession(w http.ResponseWriter, r *http.Request, a *authed) {
	var body consoleSession
	if err := json.NewDecoder(io.LimitReader(r.Body, wire.MaxSDP+4096)).Decode(&body); err != nil {
		writeErr(w, wire.Errorf(wire.CodeBadRequest, "the body must be {machine, mode, sdp}: %v", err))
		return
	}
	args := &wire.SessionArgs{Machine: body.Machine, Mode: body.Mode, Transport: wire.TransportWebRTC,
		Params: wire.PeerParams{SDP: body.SDP}}
	check := func() ([]string, *wire.Error) {
		if args.Machine == "" {
			return nil, wire.Errorf(wire.CodeBadRequest, "machine is empty")
		}
		switch args.Mode {
		case wire.ModeReadOnly, wire.ModeInteractive, wire.ModeElevated:
		default:
			return nil, wire.Errorf(wire.CodeBadRequest, "mode %q is not read-only, interactive or elevated", args.Mode)
		}
		if err := args.Params.Validate(); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
		}
		fps, err := rtc.Fingerprints(args.Params.SDP)
		if err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "the offer: %v", err)
		}
		if len(fps) > 4 {
			return nil, wire.Errorf(wire.CodeBadRequest, "the offer declares %d DTLS fingerprints; at most 4", len(fps))
		}
		return fps, nil
	}
	res, werr := c.b.requestSession(r.Context(), &a.tech, a.id, args, true, check)
	if werr != nil {
		writeErr(w, werr)
		return
	}
	sr := res.(wire.SessionResult)
	if sr.Redirect != nil {
		addr := sr.Redirect.HTTP
		if !strings.Contains(addr, "://") {
			addr = "http://" + addr
		}
		writeErr(w, wire.Errorf(wire.CodeUnavailable, "this machine is connected to broker %s: open its console at %s",
			sr.Redirect.Name, addr))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": sr.Session, "machine": sr.Machine, "name": sr.Name,
		"mode": args.Mode, "sdp": sr.Answer.SDP})
}

// statusWriter remembers the status a handler wrote, for the log. It
// passes Flush and the rest through Unwrap (http.ResponseController).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeErr writes a wire error with the HTTP status of its code.
func writeErr(w http.ResponseWriter, e *wire.Error) {
	status := map[string]int{
		wire.CodeBadRequest: http.StatusBadRequest, wire.CodeTooLarge: http.StatusRequestEntityTooLarge,
		wire.CodeUnauthorized: http.StatusUnauthorized, wire.CodeForbidden: http.StatusForbidden,
		wire.CodeNotFound: http.StatusNotFound, wire.CodeConflict: http.StatusConflict,
		wire.CodeTokenInvalid: http.StatusUnauthorized, wire.CodeUnavailable: http.StatusServiceUnavailable,
		wire.CodeGone: http.StatusGone,
	}[e.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{"error": e})
}
