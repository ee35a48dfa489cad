package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// proc is a started binary whose output is kept for the test's log.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs bin; it is killed when the test ends, and its output is
// logged if the test failed.
func start(tb testing.TB, name, bin string, env []string, args ...string) *proc {
	tb.Helper()
	p := &proc{name: name, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if tb.Failed() {
			tb.Logf("--- %s output:\n%s", name, tail(p.out.String(), 60))
		}
	})
	return p
}

// stop signals p and waits up to 10 s for it to exit.
func (p *proc) stop(sig syscall.Signal) bool {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// waitLine waits for an output line starting with prefix.
func (p *proc) waitLine(tb testing.TB, prefix string, d time.Duration) string {
	tb.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix) {
				return sc.Text()
			}
		}
		select {
		case <-p.done:
			tb.Fatalf("%s exited before printing %q:\n%s", p.name, prefix, tail(p.out.String(), 40))
		case <-time.After(50 * time.Millisecond):
		}
	}
	tb.Fatalf("%s did not print %q in %v:\n%s", p.name, prefix, d, tail(p.out.String(), 40))
	return ""
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fleet is a broker with two clients, acme and globex, and the demo's
// fixture machines.
type fleet struct {
	tb     testing.TB
	dir    string
	broker *proc
	http   string // the console's base URL
	admin  *tech
	agents map[string]*agent
}

// tech is a meshctl home.
type tech struct {
	tb   testing.TB
	home string
}

// meshctl runs meshctl as c and returns its stdout; it fails the test on
// a non-zero exit.
func (c *tech) meshctl(args ...string) string {
	c.tb.Helper()
	out, err := c.try(args...)
	if err != nil {
		c.tb.Fatalf("meshctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (c *tech) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.meshctl, args...)
	cmd.Env = append(os.Environ(), "READYMESH_HOME="+c.home, "READYMESH_SESSION_ADDR=127.0.0.1:0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// consoleLink asks the broker for a one-time sign-in link for c.
func (c *tech) consoleLink() wire.ConsoleLogin {
	c.tb.Helper()
	var l wire.ConsoleLogin
	if err := json.Unmarshal([]byte(c.meshctl("console", "--json")), &l); err != nil || l.URL == "" {
		c.tb.Fatalf("meshctl console --json: %v", err)
	}
	return l
}

// agent is an enrolled sessiond.
type agent struct {
	name, client, id, dir, fixture string
	proc                           *proc
}

var enrolledRE = regexp.MustCompile(`^enrolled (\S+) in client (\S+) as machine (\S+)`)

// fixtures are the demo's machines: the fleet a new user sees first.
var fixtures = []struct{ client, name string }{
	{"acme", "acme-laptop-07"}, {"acme", "acme-fs01"},
	{"globex", "globex-web-02"}, {"globex", "globex-kiosk-03"},
}

// newFleet starts a broker (heartbeat 500 ms, so a stopped agent shows
// offline within 1.5 s) and the demo's fixture machines, all online.
func newFleet(tb testing.TB) *fleet {
	tb.Helper()
	needSetup(tb)
	f := &fleet{tb: tb, dir: tb.TempDir(), agents: map[string]*agent{}}
	bdir := filepath.Join(f.dir, "broker")
	f.broker = start(tb, "broker", bins.broker, nil, "--data", bdir, "--listen", "127.0.0.1:0",
		"--http", "127.0.0.1:0", "--stun", "127.0.0.1:0", "--name", "console-broker", "--heartbeat", "500ms",
		"--alert-every", "1s", "--alert-offline", "2s", "--alert-offline-stopped", "2s")
	line := f.broker.waitLine(tb, "broker ready", 20*time.Second)
	m := regexp.MustCompile(`http=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		tb.Fatalf("no http= in %q", line)
	}
	f.http = "http://" + m[1]
	f.admin = &tech{tb: tb, home: filepath.Join(f.dir, "admin")}
	f.admin.meshctl("login", "--credential", filepath.Join(bdir, "admin.credential"))
	tokens := map[string]string{}
	for _, c := range []string{"acme", "globex"} {
		f.admin.meshctl("clients", "create", c)
		var tr wire.TokenResult
		json.Unmarshal([]byte(f.admin.meshctl("tokens", "create", "--client", c, "--uses", "10", "--json")), &tr)
		tokens[c] = tr.Token
	}
	for _, fx := range fixtures {
		a := &agent{name: fx.name, dir: filepath.Join(f.dir, "agent-"+fx.name),
			fixture: filepath.Join("..", "demo", "fixtures", fx.name+".json")}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bins.sessiond, "enroll", "--token", tokens[fx.client], "--name", fx.name, "--state", a.dir).CombinedOutput()
		cancel()
		em := enrolledRE.FindStringSubmatch(string(out))
		if err != nil || em == nil {
			tb.Fatalf("enroll %s: %v: %s", fx.name, err, out)
		}
		a.client, a.id = em[2], em[3]
		f.agents[fx.name] = a
		f.startAgent(a)
	}
	f.waitCards(func(cards []wire.Card) (bool, string) {
		n := 0
		for _, c := range cards {
			if c.Reachability.Online && c.Readiness.LastCheckIn != nil {
				n++
			}
		}
		return n == len(fixtures), fmt.Sprintf("%d of %d online and checked in", n, len(fixtures))
	})
	return f
}

func (f *fleet) startAgent(a *agent) {
	f.tb.Helper()
	a.proc = start(f.tb, "agent "+a.name, bins.sessiond, nil, "run", "--state", a.dir, "--interval", "1h",
		"--reconnect-max", "1s", "--session-addr", "127.0.0.1:0", "--inventory", a.fixture)
}

// waitCards polls the admin's view (meshctl, not the browser) until ok.
func (f *fleet) waitCards(ok func([]wire.Card) (bool, string)) {
	f.tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		var cards []wire.Card
		if out, err := f.admin.try("machines", "--json"); err == nil && json.Unmarshal([]byte(out), &cards) == nil {
			var done bool
			if done, last = ok(cards); done {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	f.tb.Fatalf("fleet never got there: %s", last)
}

// technician adds a technician with access to clients and logs a meshctl
// home in as it.
func (f *fleet) technician(name, clients, modes string) *tech {
	f.tb.Helper()
	var r wire.TechnicianResult
	out := f.admin.meshctl("technicians", "add", name, "--clients", clients, "--modes", modes, "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		f.tb.Fatalf("technicians add --json: %v: %s", err, out)
	}
	c := &tech{tb: f.tb, home: filepath.Join(f.dir, "tech-"+name)}
	c.meshctl("login", "--credential", r.LoginToken)
	return c
}
