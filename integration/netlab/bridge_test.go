package netlab

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	// Re-executed as a helper program inside a namespace (node_test.go):
	// run it, and build nothing.
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "readymesh-netlab-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./broker/cmd/broker", "./sessiond/cmd/sessiond", "./peer/cmd/meshctl")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a process started in a namespace, stopped in cleanup.
type proc struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

func start(t *testing.T, l *Lab, ns, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: l.Command(ns, filepath.Join(binDir, bin), args...), log: new(bytes.Buffer)}
	p.cmd.Stderr = &syncWriter{b: p.log}
	return p
}

func (p *proc) run(t *testing.T, name string) {
	t.Helper()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- %s log:\n%s", name, tail(p.log.String(), 40))
		}
	})
}

type syncWriter struct{ b *bytes.Buffer }

func (w *syncWriter) Write(p []byte) (int, error) { return w.b.Write(p) }

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fleet is a broker in its own namespace and a technician home.
type fleet struct {
	lab     *Lab
	brokerN string
	data    string
	home    string
}

// startBroker starts a broker in namespace ns listening on ip.
func startBroker(t *testing.T, l *Lab, ns, ip string) *fleet {
	t.Helper()
	return startBrokerArgs(t, l, ns, ip)
}

// startBrokerArgs is startBroker with more broker flags. It logs in as
// admin and creates the clients lab and globex.
func startBrokerArgs(t *testing.T, l *Lab, ns, ip string, extra ...string) *fleet {
	t.Helper()
	f := &fleet{lab: l, brokerN: ns, data: filepath.Join(t.TempDir(), "broker"), home: filepath.Join(t.TempDir(), "tech")}
	args := append([]string{"--data", f.data, "--listen", ip + ":0", "--http", "127.0.0.1:0", "--heartbeat", "1s"}, extra...)
	p := start(t, l, ns, "broker", args...)
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.run(t, "broker")
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "broker ready") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("broker not ready in 20 s")
	}
	f.meshctl(t, "login", "--credential", filepath.Join(f.data, "admin.credential"))
	// In a cluster the clients may already have come from another
	// broker, or arrive between the two commands: "already exists" is fine.
	for _, c := range []string{"lab", "globex"} {
		if out := f.try("clients", "create", c); out == nil && !strings.Contains(string(f.try("clients", "ls")), c) {
			t.Fatalf("cannot create client %s on %s", c, ns)
		}
	}
	return f
}

// meshctl runs meshctl in the broker's namespace.
func (f *fleet) meshctl(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := f.lab.Command(f.brokerN, filepath.Join(binDir, "meshctl"), args...)
	cmd.Env = append(os.Environ(), "READYMESH_HOME="+f.home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("meshctl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// agent enrols and starts an agent in namespace ns.
func (f *fleet) agent(t *testing.T, ns, name string, extra ...string) {
	t.Helper()
	f.agentProc(t, ns, name, extra...)
}

// agentProc is agent returning the agent's state directory (for sessiond
// checkin and the like) and its process, whose log it keeps.
func (f *fleet) agentProc(t *testing.T, ns, name string, extra ...string) (string, *proc) {
	t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(f.meshctl(t, "tokens", "create", "--client", "lab", "--json"), &tok); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), name)
	if out, err := f.lab.Command(ns, filepath.Join(binDir, "sessiond"), "enroll", "--token", tok.Token,
		"--name", name, "--state", state).CombinedOutput(); err != nil {
		t.Fatalf("enrol %s: %v: %s", name, err, out)
	}
	p := start(t, f.lab, ns, "sessiond", append([]string{"run", "--state", state, "--reconnect-max", "2s", "--system-bus", "none"}, extra...)...)
	p.run(t, name)
	return state, p
}

// card is the part of meshctl show --json (wire.Card) these tests read.
type card struct {
	Name      string `json:"name"`
	Readiness struct {
		CheckInReason string     `json:"check_in_reason"`
		CheckInSeq    uint64     `json:"check_in_seq"`
		LastCheckIn   *time.Time `json:"last_check_in"`
	} `json:"readiness"`
	Reachability struct {
		Online          bool       `json:"online"`
		Transport       string     `json:"transport"`
		OfflineReason   string     `json:"offline_reason"`
		OfflineSince    *time.Time `json:"offline_since"`
		Detail          string     `json:"detail"`
		ExpectedBack    *time.Time `json:"expected_back"`
		UDPBlockedSince *time.Time `json:"udp_blocked_since"`
		Returned        *struct {
			What string    `json:"what"`
			At   time.Time `json:"at"`
		} `json:"returned"`
	} `json:"reachability"`
}

// waitCard polls the machine's card until ok accepts it.
func (f *fleet) waitCard(t *testing.T, name string, limit time.Duration, ok func(card) bool) card {
	t.Helper()
	deadline := time.Now().Add(limit)
	var c card
	for time.Now().Before(deadline) {
		cmd := f.lab.Command(f.brokerN, filepath.Join(binDir, "meshctl"), "show", name, "--json")
		cmd.Env = append(os.Environ(), "READYMESH_HOME="+f.home)
		if out, err := cmd.Output(); err == nil && json.Unmarshal(out, &c) == nil && ok(c) {
			return c
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: card never matched within %s; last %+v", name, limit, c)
	return c
}

const fixture = "../demo/fixtures/globex-kiosk-03.json"

// TestBridgeFallsBackToTCPWhenUDPBlocked puts one agent behind a firewall
// that drops all UDP (as many corporate networks do) and one on an open
// network: both come online, the first over TCP, the second over QUIC.
// The first one's card says UDP is blocked since when; the second's does
// not.
func TestBridgeFallsBackToTCPWhenUDPBlocked(t *testing.T) {
	began := time.Now()
	l := New(t, "nft")
	brk, open, blocked := l.Host("brk"), l.Host("open"), l.Host("blocked")
	l.Link(brk, "10.213.1.1/24", open, "10.213.1.2/24")
	l.Link(brk, "10.213.2.1/24", blocked, "10.213.2.2/24")
	l.Exec(open, "ip", "route", "add", "default", "via", "10.213.1.1")
	l.Exec(blocked, "ip", "route", "add", "default", "via", "10.213.2.1")
	l.Exec(brk, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.Nft(blocked, "add table inet fw")
	l.Nft(blocked, "'add chain inet fw out { type filter hook output priority 0 ; }'")
	l.Nft(blocked, "add rule inet fw out oifname != lo meta l4proto udp drop")

	f := startBroker(t, l, brk, "0.0.0.0")
	f.agent(t, open, "open-pc", "--inventory", fixture)
	f.agent(t, blocked, "blocked-pc", "--inventory", fixture)

	c := f.waitCard(t, "open-pc", 20*time.Second, func(c card) bool { return c.Reachability.Online && c.Readiness.CheckInSeq > 0 })
	if c.Reachability.Transport != "quic" {
		t.Errorf("open-pc bridge transport = %q, want quic", c.Reachability.Transport)
	}
	start := time.Now()
	c = f.waitCard(t, "blocked-pc", 30*time.Second, func(c card) bool { return c.Reachability.Online && c.Readiness.CheckInSeq > 0 })
	if c.Reachability.Transport != "tcp" && c.Reachability.Transport != "websocket" {
		t.Errorf("blocked-pc bridge transport = %q, want tcp or websocket", c.Reachability.Transport)
	}
	t.Logf("UDP-blocked agent online over %s, %s after the open one", c.Reachability.Transport, time.Since(start).Round(time.Millisecond))

	// The card says why the bridge is not QUIC: UDP blocked since when
	// the agent found out, and on which transport it fell back.
	r := c.Reachability
	if r.UDPBlockedSince == nil {
		t.Errorf("blocked-pc: udp_blocked_since not set; reachability %+v", r)
	} else {
		if r.UDPBlockedSince.Before(began.Add(-time.Second)) || r.UDPBlockedSince.After(time.Now()) {
			t.Errorf("blocked-pc: udp_blocked_since %v, want between the test's start %v and now", r.UDPBlockedSince, began)
		}
		want := "UDP blocked since " + r.UDPBlockedSince.UTC().Format(time.RFC3339) + ": the bridge fell back to " + r.Transport
		if !strings.Contains(r.Detail, want) {
			t.Errorf("blocked-pc: detail %q, want it to contain %q", r.Detail, want)
		}
	}
	t.Logf("blocked-pc detail: %q", r.Detail)
	o := f.waitCard(t, "open-pc", 5*time.Second, func(c card) bool { return c.Reachability.Online }).Reachability
	if o.UDPBlockedSince != nil || strings.Contains(o.Detail, "UDP blocked") {
		t.Errorf("open-pc (UDP open) says UDP is blocked: udp_blocked_since %v, detail %q", o.UDPBlockedSince, o.Detail)
	}
}

// TestNetworkChangeTriggersCheckIn changes the agent's addresses and default
// route and expects a check-in with reason "network", seen through netlink.
func TestNetworkChangeTriggersCheckIn(t *testing.T) {
	l := New(t)
	brk, agt := l.Host("brk"), l.Host("agt")
	l.Link(brk, "10.213.3.1/24", agt, "10.213.3.2/24")
	f := startBroker(t, l, brk, "10.213.3.1")
	// Real collectors: network changes are watched only for the machine
	// the agent really runs on, not for fixture machines.
	f.agent(t, agt, "pc")
	first := f.waitCard(t, "pc", 60*time.Second, func(c card) bool { return c.Readiness.CheckInSeq > 0 })
	l.Exec(agt, "ip", "addr", "add", "10.213.99.77/32", "dev", "lo")
	c := f.waitCard(t, "pc", 60*time.Second, func(c card) bool {
		return c.Readiness.CheckInSeq > first.Readiness.CheckInSeq
	})
	if c.Readiness.CheckInReason != "network" {
		t.Fatalf("check-in after an address change has reason %q, want network", c.Readiness.CheckInReason)
	}
}

// TestOfficeBehindOneAddress runs a dozen agents from one address, as the
// PCs of a client office arrive from its NAT router, and a technician who
// polls the broker many times a second from another: all stay admitted.
// (libp2p's default resource manager admits only 8 connections per IPv4
// address and one new one per 5 s past a burst; the broker lifts both.)
func TestOfficeBehindOneAddress(t *testing.T) {
	l := New(t)
	brk, office := l.Host("brk"), l.Host("office")
	l.Link(brk, "10.213.4.1/24", office, "10.213.4.2/24")
	f := startBroker(t, l, brk, "10.213.4.1")
	const n = 12
	for i := 0; i < n; i++ {
		f.agent(t, office, fmt.Sprintf("pc-%02d", i), "--inventory", fixture)
	}
	deadline := time.Now().Add(45 * time.Second)
	online := 0
	for time.Now().Before(deadline) {
		var cards []card
		json.Unmarshal(f.meshctl(t, "machines", "--online", "--json"), &cards)
		if online = len(cards); online == n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if online != n {
		t.Fatalf("%d of %d agents behind one address online", online, n)
	}
}
