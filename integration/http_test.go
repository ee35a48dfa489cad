package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// The broker's HTTP port is reachable before anyone signs in. These tests
// hold the real broker to its bounds there: a request body that never
// finishes, idle connections beyond the per-address cap, and what
// /healthz tells a stranger. Each bound is set small by flag, so the
// tests wait for the broker's timers, not the defaults'.

// ioBound bounds any one wait on a socket here: far above the short
// timeouts the brokers run with, it only turns a hang into a failure.
const ioBound = 15 * time.Second

// TestHTTPSlowBody: a sign-in whose body trickles in, a byte at a time,
// is cut off once the read timeout passes, and its connection closed by
// the broker, however long the client keeps sending.
func TestHTTPSlowBody(t *testing.T) {
	needBinaries(t)
	b := startBrokerArgs(t, testDir(t), "slowbody", 0, "--http-read-timeout", "500ms")
	c, err := net.Dial("tcp", b.info.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"code\":\"", b.info.HTTP)
	// The trickle: one byte every 50 ms, at most 300 (15 s, ioBound), until
	// a write fails or the test ends.
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		for range 300 {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-trickled }()
	c.SetReadDeadline(time.Now().Add(ioBound))
	reply, err := io.ReadAll(c)
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		t.Fatalf("the broker held a sign-in with a trickling body open for %v (read %q)", ioBound, reply)
	}
	// Ended by the broker: EOF (ReadAll's nil) or a reset.
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the reply: %v", err)
	}
	if len(reply) > 0 && !bytes.HasPrefix(reply, []byte("HTTP/1.1 400")) {
		t.Errorf("the broker answered the cut-off sign-in with %q, want a 400", firstLine(reply))
	}
	t.Logf("closed by the broker after %q", firstLine(reply))
}

// TestHTTPConnsPerAddr: idle keep-alive connections from one address
// beyond the cap are closed by the broker as they arrive; those within it
// keep working, another address is not affected, and a slot freed by a
// close is taken again.
func TestHTTPConnsPerAddr(t *testing.T) {
	needBinaries(t)
	const perIP = 3
	b := startBrokerArgs(t, testDir(t), "connsperaddr", 0, "--http-max-conns-per-ip", fmt.Sprint(perIP))
	var idle []*keepAlive
	for i := range perIP {
		k, err := dialKeepAlive(b.info.HTTP, nil)
		if err != nil {
			t.Fatalf("connection %d of %d within the cap: %v", i+1, perIP, err)
		}
		defer k.Close()
		idle = append(idle, k)
	}
	for i := range perIP {
		k, err := dialKeepAlive(b.info.HTTP, nil)
		if err == nil {
			k.Close()
			t.Fatalf("connection %d over the per-address cap of %d was served", i+1, perIP)
		}
		if !closedByPeer(err) {
			t.Fatalf("connection %d over the cap: %v, want closed by the broker", i+1, err)
		}
	}
	for i, k := range idle {
		if err := k.get(); err != nil {
			t.Errorf("idle connection %d within the cap no longer served: %v", i+1, err)
		}
	}
	// Another address (Linux routes all of 127/8 to lo) has its own count.
	other := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	if k, err := dialKeepAlive(b.info.HTTP, other); err != nil {
		t.Errorf("a connection from 127.0.0.2 was refused while 127.0.0.1 was at its cap: %v", err)
	} else {
		k.Close()
	}
	// A closed connection frees its slot once the broker has seen it go.
	idle[0].Close()
	var metrics []byte
	poll(t, ioBound, "a slot freed by a closed connection", func() (bool, string) {
		k, err := dialKeepAlive(b.info.HTTP, nil)
		if err != nil {
			return false, err.Error()
		}
		defer k.Close()
		metrics, err = k.fetch("/metrics")
		return err == nil, fmt.Sprint(err)
	})
	// At least perIP: the poll above may have been refused too, before
	// the broker saw the close.
	var refused int
	fmt.Sscanf(grepLines(metrics, `readymesh_http_conns_refused_total{reason="per_addr"}`),
		`readymesh_http_conns_refused_total{reason="per_addr"} %d`, &refused)
	if refused < perIP {
		t.Errorf("/metrics counts %d refused connections, want at least %d:\n%s", refused, perIP, grepLines(metrics, "readymesh_http_conns"))
	}
}

// TestHealthz: /healthz tells a stranger that the broker is up and its
// version, nothing about the fleet; an admin signed in to the console also
// gets the counts, a technician of one client does not.
func TestHealthz(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBroker(t, base, "healthz", 0)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	tok := admin.token("acme", 1, time.Hour).Token
	a := enroll(t, base, tok, "desk-01", "linux-ready.json")
	a.start()
	waitOnline(t, admin, 20*time.Second, a)

	anon, err := getHealthz(http.DefaultClient, b)
	if err != nil {
		t.Fatal(err)
	}
	if anon["status"] != "ok" || anon["version"] == nil || anon["version"] == "" || anon["protocol"] == nil || len(anon) != 3 {
		t.Errorf("/healthz without sign-in = %v, want status ok, the version and the protocol alone", anon)
	}

	hc, err := b.consoleClient(admin)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := getHealthz(hc, b)
	if err != nil {
		t.Fatal(err)
	}
	if signed["machines"] != 1.0 || signed["online"] != 1.0 {
		t.Errorf("/healthz for a signed-in admin = %v, want 1 machine, 1 online", signed)
	}

	var added wire.TechnicianResult
	out := admin.ok("technicians", "add", "t1", "--clients", "acme", "--modes", "read-only", "--json")
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.LoginToken == "" {
		t.Fatalf("technicians add --json: %v\n%s", err, out)
	}
	t1 := newTech(t, base, "t1")
	t1.ok("login", "--credential", added.LoginToken)
	tc, err := b.consoleClient(t1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := getHealthz(tc, b); err != nil || len(got) != 3 || got["protocol"] == nil {
		t.Errorf("/healthz for a signed-in technician = %v, %v; want status, version and protocol alone", got, err)
	}
}

// TestHTTPEventStreamOutlivesTimeouts: the console's event stream is not
// cut by the read and write timeouts that bound every other request: it
// still delivers after both have passed several times over.
func TestHTTPEventStreamOutlivesTimeouts(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBrokerArgs(t, base, "stream", 0, "--http-read-timeout", "300ms", "--http-write-timeout", "300ms",
		"--http-read-header-timeout", "300ms")
	admin := b.admin(base)
	hc, err := b.consoleClient(admin)
	if err != nil {
		t.Fatal(err)
	}
	hc.Timeout = 0 // the stream's reads are bounded below
	resp, err := hc.Get("http://" + b.info.HTTP + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/events: %s", resp.Status)
	}
	events := make(chan string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			events <- sc.Text()
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case line, ok := <-events:
			if !ok {
				t.Fatalf("the event stream ended before %s", what)
			}
			return line
		case <-time.After(ioBound):
			t.Fatalf("no %s on the event stream within %v", what, ioBound)
		}
		return ""
	}
	if line := next("hello"); line != "event: hello" {
		t.Fatalf("the stream began with %q, want event: hello", line)
	}
	time.Sleep(2 * time.Second) // several read and write timeouts
	// A store commit wakes every stream; it sends what changed, or an
	// ": idle" comment.
	admin.ok("clients", "create", "acme")
	for {
		if line := next("anything after the timeouts passed"); line != "" && line != "data: {}" {
			break
		}
	}
}

// getHealthz reads /healthz with hc.
func getHealthz(hc *http.Client, b *broker) (map[string]any, error) {
	resp, err := hc.Get("http://" + b.info.HTTP + "/healthz")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("/healthz: %w", err)
	}
	return out, nil
}

// consoleClient signs c in to b's web console as a browser does with the
// link meshctl console prints, and returns a client carrying the sign-in.
func (b *broker) consoleClient(c *tech) (*http.Client, error) {
	r := c.run("console", "--json")
	if r.err != nil {
		return nil, fmt.Errorf("meshctl console: %v: %s", r.err, r.stderr)
	}
	var link wire.ConsoleLogin
	if err := json.Unmarshal([]byte(r.stdout), &link); err != nil || link.Code == "" {
		return nil, fmt.Errorf("meshctl console --json: %v: %s", err, r.stdout)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: ioBound}
	body, _ := json.Marshal(map[string]string{"code": link.Code})
	resp, err := hc.Post("http://"+b.info.HTTP+"/api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("console sign-in: %s %s", resp.Status, raw)
	}
	return hc, nil
}

// keepAlive is one HTTP/1.1 connection that asks for keep-alive and is
// idle between requests.
type keepAlive struct {
	net.Conn
	host string
	rd   *bufio.Reader
}

// dialKeepAlive connects to addr from local (nil: any) and makes one
// request, so the connection is known to be served before it idles.
func dialKeepAlive(addr string, local *net.TCPAddr) (*keepAlive, error) {
	d := net.Dialer{Timeout: ioBound}
	if local != nil {
		d.LocalAddr = local
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	k := &keepAlive{Conn: c, host: addr, rd: bufio.NewReader(c)}
	if err := k.get(); err != nil {
		c.Close()
		return nil, err
	}
	return k, nil
}

// get asks for /healthz and reads the reply.
func (k *keepAlive) get() error {
	_, err := k.fetch("/healthz")
	return err
}

// fetch asks for path on the connection and returns the body.
func (k *keepAlive) fetch(path string) ([]byte, error) {
	k.SetDeadline(time.Now().Add(ioBound))
	defer k.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(k, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, k.host); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(k.rd, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return body, err
}

// closedByPeer says whether err is the other end closing: EOF, a reset,
// or a broken pipe.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// grepLines returns the lines of text containing s.
func grepLines(text []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(text), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
