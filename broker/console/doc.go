// Package console is the broker's web console: the browser app technicians
// use to see their fleet and open live sessions, its JSON API under /api,
// and the event streams that push changes to open pages.
//
// The app's files are embedded in the broker binary, so a broker is one
// file to deploy and the console comes from the same origin as the API it
// calls: no separate web server, no CORS, and the cookie and CSP can be
// strict. The app is a static bundle (dist/index.html, app.js and app.css)
// made by `go run ./broker/console/build`, which `make build` runs; a
// broker compiled without running it still starts, and its console says so
// with a 503 instead of a blank page.
//
// Sign-in: a technician's credential is the key meshctl holds. `meshctl
// console` asks the broker, over the authenticated bridge, for a one-time
// code (IssueCode); the browser trades it for a session cookie. The broker
// never stores a password, and the code is good once, for two minutes, on
// the broker that issued it.
//
// Every API call runs the same technician operation meshctl runs (Ops),
// with the technician looked up afresh from the store on each request:
// scopes, modes and removal apply at once, and a machine outside the
// technician's clients is "not found", whether listed or named in a URL.
//
// CSRF: the cookie is SameSite=Strict and HttpOnly; every state-changing
// request must also carry the session's CSRF token in X-CSRF-Token and
// pass net/http's cross-origin protection (Sec-Fetch-Site or Origin).
//
// Live updates are server-sent events (events.go); the page never polls.
package console
