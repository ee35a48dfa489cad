package netlab

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The NAT tests run a tiny UDP/TCP program inside namespaces: this test
// binary itself, re-executed through Lab.Command with helperEnv set, which
// TestMain hands to helperMain before doing anything else. No python or
// socat is needed, and the program is the same Go the tests are.

// helperEnv selects a helper mode in a re-executed test binary.
const helperEnv = "NETLAB_HELPER"

// helperLifetime bounds how long a helper can outlive a test that lost it.
const helperLifetime = 2 * time.Minute

// helperMain runs helper mode (only "node" exists) with args and returns
// the exit code.
//
// A node binds UDP and TCP on every ADDR:PORT in args, prints "ready", then
// reports every datagram as "recv LPORT SRC PAYLOAD". It answers a datagram
// "probe" with "seen SRC" (as a STUN server tells a client its mapped
// address), a datagram "punch" with "ack" (as ICE answers a connectivity
// check, to whatever address it came from), and a TCP connection with
// "seen SRC". It reads commands on stdin, one per line:
//
//	send LPORT DST PAYLOAD   send a datagram from the socket on LPORT,
//	                         print "sent LPORT DST PAYLOAD" (or "error …")
//	tcp DST                  connect, print "tcp DST <the reply>"
//
// It exits when stdin closes, or after helperLifetime.
func helperMain(mode string, args []string) int {
	if mode != "node" || len(args) == 0 {
		fmt.Fprintf(os.Stderr, "netlab helper: unknown mode %q or no addresses\n", mode)
		return 2
	}
	time.AfterFunc(helperLifetime, func() { os.Exit(3) })
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	conns := map[uint16]*net.UDPConn{}
	for _, arg := range args {
		ap, err := netip.ParseAddrPort(arg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		tl, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(ap))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		conns[ap.Port()] = uc
		go serveUDP(uc, say)
		go serveTCP(tl)
	}
	say("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 4 && f[0] == "send":
			var port uint16
			fmt.Sscan(f[1], &port)
			dst, err := netip.ParseAddrPort(f[2])
			c := conns[port]
			if c == nil {
				err = fmt.Errorf("no socket on port %s", f[1])
			}
			if err == nil {
				_, err = c.WriteToUDPAddrPort([]byte(f[3]), dst)
			}
			if err != nil {
				say("error %s: %v", sc.Text(), err)
			} else {
				say("sent %s %s %s", f[1], f[2], f[3])
			}
		case len(f) == 2 && f[0] == "tcp":
			say("tcp %s %s", f[1], tcpProbe(f[1]))
		default:
			say("error unknown command %q", sc.Text())
		}
	}
	return 0
}

func serveUDP(c *net.UDPConn, say func(string, ...any)) {
	port := netip.MustParseAddrPort(c.LocalAddr().String()).Port()
	buf := make([]byte, 2048)
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg := string(buf[:n])
		say("recv %d %s %s", port, src, msg)
		switch msg {
		case "probe":
			c.WriteToUDPAddrPort([]byte("seen "+src.String()), src)
		case "punch":
			c.WriteToUDPAddrPort([]byte("ack"), src)
		}
	}
}

func serveTCP(l *net.TCPListener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		fmt.Fprintf(c, "seen %s\n", c.RemoteAddr())
		c.Close()
	}
}

// tcpProbe connects to dst and returns the first line it sends, or the
// error.
func tcpProbe(dst string) string {
	c, err := net.DialTimeout("tcp4", dst, 2*time.Second)
	if err != nil {
		return "error " + err.Error()
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "error " + err.Error()
	}
	return strings.TrimSpace(line)
}

// node is a helper node running in a namespace, seen from the test.
type node struct {
	name string
	in   io.WriteCloser

	mu    sync.Mutex // guards lines
	lines []string   // everything the node printed, in order
}

// spawnNode starts a node in namespace ns bound to each of addrs
// (ADDR:PORT) and waits until it is ready. It stops in t's cleanup.
func spawnNode(t *testing.T, l *Lab, ns string, addrs ...string) *node {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: ns}
	cmd := l.Command(ns, exe, addrs...)
	cmd.Env = append(os.Environ(), helperEnv+"=node")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if n.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node in %s: %v", ns, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			n.mu.Lock()
			n.lines = append(n.lines, sc.Text())
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		// Closing stdin ends the node; kill it if it does not go.
		n.in.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		cmd.Wait()
		if t.Failed() {
			n.mu.Lock()
			t.Logf("node %s printed:\n%s\nstderr:\n%s", ns, strings.Join(n.lines, "\n"), stderr.String())
			n.mu.Unlock()
		}
	})
	if _, ok := n.wait(0, 10*time.Second, func(s string) bool { return s == "ready" }); !ok {
		t.Fatalf("node in %s not ready in 10 s; stderr: %s", ns, stderr.String())
	}
	return n
}

// do sends the node one command line.
func (n *node) do(t *testing.T, format string, a ...any) {
	t.Helper()
	if _, err := fmt.Fprintf(n.in, format+"\n", a...); err != nil {
		t.Fatalf("node %s: %v", n.name, err)
	}
}

// send has the node send payload from its socket on port to dst, and
// returns once the node has handed it to its kernel.
func (n *node) send(t *testing.T, port uint16, dst netip.AddrPort, payload string) {
	t.Helper()
	since := n.mark()
	n.do(t, "send %d %s %s", port, dst, payload)
	s, ok := n.wait(since, 5*time.Second, func(s string) bool {
		return strings.HasPrefix(s, "sent ") || strings.HasPrefix(s, "error ")
	})
	if !ok || strings.HasPrefix(s, "error ") {
		t.Fatalf("node %s: send %d %s %s: %q", n.name, port, dst, payload, s)
	}
}

// mark returns how many lines the node has printed so far, for wait.
func (n *node) mark() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.lines)
}

// wait returns the first line from line number since on (see mark) that
// match accepts, waiting up to limit for it to be printed.
func (n *node) wait(since int, limit time.Duration, match func(string) bool) (string, bool) {
	deadline := time.Now().Add(limit)
	for {
		n.mu.Lock()
		for _, s := range n.lines[min(since, len(n.lines)):] {
			if match(s) {
				n.mu.Unlock()
				return s, true
			}
		}
		n.mu.Unlock()
		if time.Now().After(deadline) {
			return "", false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// received reports whether a datagram from a source accepted by from
// reached the node's port since line number since, waiting up to limit.
func (n *node) received(since int, port uint16, limit time.Duration, from func(netip.AddrPort) bool) bool {
	_, ok := n.wait(since, limit, func(s string) bool {
		f := strings.Fields(s)
		if len(f) < 3 || f[0] != "recv" || f[1] != fmt.Sprint(port) {
			return false
		}
		src, err := netip.ParseAddrPort(f[2])
		return err == nil && from(src)
	})
	return ok
}

// probe asks the node at server (a node as well) from port which address
// it sees the datagram come from: the mapped address. It tries five times
// 300 ms apart and reports false if no answer came.
func (n *node) probe(t *testing.T, port uint16, server netip.AddrPort) (netip.AddrPort, bool) {
	t.Helper()
	prefix := fmt.Sprintf("recv %d %s seen ", port, server)
	since := n.mark()
	for range 5 {
		n.send(t, port, server, "probe")
		if s, ok := n.wait(since, 300*time.Millisecond, func(s string) bool { return strings.HasPrefix(s, prefix) }); ok {
			mapped, err := netip.ParseAddrPort(strings.TrimPrefix(s, prefix))
			if err != nil {
				t.Fatalf("node %s: bad probe answer %q", n.name, s)
			}
			return mapped, true
		}
	}
	return netip.AddrPort{}, false
}

// tcpProbe is probe over TCP, from an ephemeral port.
func (n *node) tcpProbe(t *testing.T, server netip.AddrPort) (netip.AddrPort, string) {
	t.Helper()
	prefix := fmt.Sprintf("tcp %s ", server)
	since := n.mark()
	n.do(t, "tcp %s", server)
	s, ok := n.wait(since, 5*time.Second, func(s string) bool { return strings.HasPrefix(s, prefix) })
	if !ok {
		return netip.AddrPort{}, "no answer in 5 s"
	}
	reply := strings.TrimPrefix(s, prefix)
	mapped, err := netip.ParseAddrPort(strings.TrimPrefix(reply, "seen "))
	if err != nil {
		return netip.AddrPort{}, reply
	}
	return mapped, ""
}
