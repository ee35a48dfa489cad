package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/wire"
)

func secret(prefix string) string {
	var raw [32]byte
	rand.Read(raw[:])
	return prefix + base64.RawURLEncoding.EncodeToString(raw[:])
}

func hashed(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// IssueCode answers OpConsoleLogin for technician t with key techID: a
// one-time sign-in code and the link that carries it.
func (c *Console) IssueCode(t *wire.Technician, techID peer.ID) (wire.ConsoleLogin, *wire.Error) {
	if c.cfg.Addr == nil {
		return wire.ConsoleLogin{}, wire.Errorf(wire.CodeUnavailable, "this broker serves no web console (its HTTP address is off)")
	}
	if !Built() {
		return wire.ConsoleLogin{}, wire.Errorf(wire.CodeUnavailable, "this broker was built without the console's assets: build it with make build")
	}
	now := c.cfg.Now()
	if !c.rate.Allow("code:"+string(techID), now) {
		return wire.ConsoleLogin{}, wire.Errorf(wire.CodeUnavailable, "too many console sign-in links asked for; wait a moment")
	}
	code, werr := c.newCode(techID.String(), now)
	if werr != nil {
		c.cfg.Logger.Warn("console sign-in code refused", "technician", t.Name, "err", werr.Message)
		return wire.ConsoleLogin{}, werr
	}
	c.cfg.Logger.Info("console sign-in code issued", "technician", t.Name)
	return wire.ConsoleLogin{Code: code, URL: c.URL() + "/#login=" + code, Expires: now.Add(CodeTTL).UTC()}, nil
}

// TestOnlyCode makes a sign-in code for technician key without the checks
// of IssueCode, so tests reach the API of a broker built without assets.
func (c *Console) TestOnlyCode(key string) (string, *wire.Error) {
	return c.newCode(key, c.cfg.Now())
}

// newCode makes a sign-in code for technician key, within the bounds.
func (c *Console) newCode(key string, now time.Time) (string, *wire.Error) {
	s := secret("rmc1_")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(now)
	if old, n := oldestOf(c.codes, key, func(v code) (string, time.Time) { return v.key, v.expires }); n >= CodesPerKey {
		delete(c.codes, old)
	}
	if len(c.codes)+len(c.sessions) >= maxSessions {
		return "", wire.Errorf(wire.CodeUnavailable, "this broker holds %d console sign-ins; try again later", maxSessions)
	}
	c.codes[hashed(s)] = code{key: key, expires: now.Add(CodeTTL)}
	return s, nil
}

// endSessionLocked removes a sign-in and ends its streams.
func (c *Console) endSessionLocked(k string) {
	if ws := c.sessions[k]; ws != nil {
		delete(c.sessions, k)
		close(ws.ended)
	}
}

// pruneLocked drops expired codes and sign-ins, at most once a second.
func (c *Console) pruneLocked(now time.Time) {
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
			c.endSessionLocked(k)
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

// authed is a signed-in request: the technician as stored now.
type authed struct {
	ws   *webSession
	tech wire.Technician
	id   peer.ID
}

// auth finds the request's console session and its technician, and for a
// request that changes something, checks its CSRF token.
func (c *Console) auth(w http.ResponseWriter, r *http.Request) (*authed, bool) {
	ws, key, werr := c.signedIn(r)
	if werr != nil {
		writeErr(w, werr)
		return nil, false
	}
	t, err := c.deps.Store.TechnicianByKey(ws.key)
	if err != nil {
		c.mu.Lock()
		c.endSessionLocked(key)
		c.mu.Unlock()
		c.cfg.Logger.Warn("console session of a removed technician key ended", "key", ws.key)
		writeErr(w, wire.Errorf(wire.CodeUnauthorized, "this technician's key is no longer known to the broker"))
		return nil, false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead &&
		subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(ws.csrf)) != 1 {
		c.cfg.Logger.Warn("console request refused: CSRF token missing or wrong", "technician", t.Name, "path", r.URL.Path)
		writeErr(w, wire.Errorf(wire.CodeForbidden, "missing or wrong X-CSRF-Token"))
		return nil, false
	}
	id, _ := peer.Decode(ws.key)
	return &authed{ws: ws, tech: t, id: id}, true
}

// Admin reports whether r carries the live console sign-in of an admin
// technician, as stored now. It writes nothing and changes nothing.
func (c *Console) Admin(r *http.Request) bool {
	ws, _, werr := c.signedIn(r)
	if werr != nil {
		return false
	}
	t, err := c.deps.Store.TechnicianByKey(ws.key)
	return err == nil && t.Admin
}

// signedIn returns the request's live sign-in and its key in the table.
func (c *Console) signedIn(r *http.Request) (*webSession, string, *wire.Error) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil, "", wire.Errorf(wire.CodeUnauthorized, "not signed in: run meshctl console and open the link it prints")
	}
	key := hashed(ck.Value)
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.sessions[key]
	if ws != nil && !now.Before(ws.expires) {
		c.endSessionLocked(key)
		ws = nil
	}
	if ws == nil {
		return nil, "", wire.Errorf(wire.CodeUnauthorized, "signed out or expired: run meshctl console for a new link")
	}
	return ws, key, nil
}

// login serves POST /api/login: a sign-in code for a session cookie.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := c.cfg.Now()
	if !c.rate.Allow("login:"+host, now) {
		c.deps.Refused("console:login", "rate")
		writeErr(w, wire.Errorf(wire.CodeUnavailable, "too many sign-in attempts from this address; wait a moment"))
		return
	}
	var body struct {
		Code string `json:"code"`
	}
	const want = `{"code": "rmc1_…"}`
	if werr := readBody(w, r, maxLoginBody, &body, want); werr != nil || body.Code == "" {
		if werr == nil {
			werr = wire.Errorf(wire.CodeBadRequest, "the body must be %s", want)
		}
		c.deps.Refused("console:login", werr.Code)
		c.cfg.Logger.Info("console sign-in refused: bad body", "remote", r.RemoteAddr, "err", werr.Message)
		writeErr(w, werr)
		return
	}
	cd, ok := c.takeCode(strings.TrimSpace(body.Code), now)
	if !ok {
		c.deps.Refused("console:login", wire.CodeUnauthorized)
		c.cfg.Logger.Warn("console sign-in refused: unknown, used or expired code", "remote", r.RemoteAddr)
		writeErr(w, wire.Errorf(wire.CodeUnauthorized, "this sign-in code is unknown, used or expired: run meshctl console for a new one"))
		return
	}
	t, err := c.deps.Store.TechnicianByKey(cd.key)
	if err != nil {
		writeErr(w, wire.Errorf(wire.CodeUnauthorized, "this technician's key is no longer known to the broker"))
		return
	}
	cookie, ws, werr := c.startSession(r, cd.key, now)
	if werr != nil {
		writeErr(w, werr)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: cookie, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.secureCookies(r), Expires: ws.expires})
	c.cfg.Logger.Info("console sign-in", "technician", t.Name, "remote", r.RemoteAddr)
	c.deps.Audit.Add(wire.AuditEntry{Event: wire.AuditConsoleLogin, Technician: t.Name, Detail: "from " + r.RemoteAddr})
	writeJSON(w, http.StatusOK, map[string]any{"technician": publicTech(t), "csrf": ws.csrf, "broker": c.cfg.Name})
}

// takeCode uses up a sign-in code, and reports whether it was good.
func (c *Console) takeCode(s string, now time.Time) (code, bool) {
	h := hashed(s)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(now)
	cd, ok := c.codes[h]
	delete(c.codes, h)
	return cd, ok && now.Before(cd.expires)
}

// startSession signs a browser in for technician key, within the bounds,
// and returns its cookie.
func (c *Console) startSession(r *http.Request, key string, now time.Time) (string, *webSession, *wire.Error) {
	cookie := secret("")
	ws := &webSession{key: key, csrf: secret(""), expires: now.Add(SessionTTL), ended: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	// This browser's previous sign-in, if any, ends: one per browser.
	if old, err := r.Cookie(cookieName); err == nil {
		c.endSessionLocked(hashed(old.Value))
	}
	if old, n := oldestOf(c.sessions, key, func(v *webSession) (string, time.Time) { return v.key, v.expires }); n >= sessionsPerKey {
		c.endSessionLocked(old)
	}
	if len(c.codes)+len(c.sessions) >= maxSessions {
		c.cfg.Logger.Warn("console sign-in refused: the broker holds its maximum of sign-ins", "max", maxSessions)
		return "", nil, wire.Errorf(wire.CodeUnavailable, "this broker holds %d console sign-ins; try again later", maxSessions)
	}
	c.sessions[hashed(cookie)] = ws
	return cookie, ws, nil
}

// secureCookies says whether the console's cookie is for HTTPS only: the
// request came over TLS, or the console's URL is https (a TLS proxy in
// front of the broker).
func (c *Console) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(c.cfg.URL, "https://")
}

// logout serves POST /api/logout.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, a *authed) {
	c.mu.Lock()
	for k, v := range c.sessions {
		if v == a.ws {
			c.endSessionLocked(k)
		}
	}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: c.secureCookies(r), MaxAge: -1})
	w.WriteHeader(http.StatusNoContent)
}

// publicTech is the technician without its keys.
func publicTech(t wire.Technician) wire.Technician {
	t.Keys = nil
	return t
}
