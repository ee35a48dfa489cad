package netwatch

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// childEnv marks the re-executed test binary that watches inside the
// namespace.
const childEnv = "READYMESH_NETWATCH_CHILD"

// Lines the child prints, each starting with childPrefix.
const (
	childPrefix = "netwatch-child: "
	childReady  = "ready"
	childChange = "change"
	childClosed = "closed"
)

// TestWatchInNamespace watches a network namespace the test creates: a
// child process (this test binary again) runs Watch inside it, the test
// changes the namespace's addresses and routes with ip, and the child
// reports each Change on stdout.
func TestWatchInNamespace(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		watchChild(t)
		return
	}
	ns := newNetns(t)
	// Only lo is used, so no kernel module (dummy, veth) is needed.
	ns.ip(t, "link", "set", "lo", "up")
	child := startChild(t, ns)

	ns.ip(t, "addr", "add", "127.77.0.1/8", "dev", "lo")
	child.expect(t, childChange, 10*time.Second)

	ns.ip(t, "route", "add", "10.99.0.0/16", "dev", "lo")
	child.expectQuiet(t, time.Second) // not a default route

	ns.ip(t, "route", "add", "default", "dev", "lo")
	child.expect(t, childChange, 10*time.Second)

	ns.ip(t, "route", "del", "default", "dev", "lo")
	child.expect(t, childChange, 10*time.Second)

	if _, err := os.Stat("/proc/sys/net/ipv6"); err == nil {
		// nodad: no duplicate detection finishing later as a second change.
		ns.ip(t, "addr", "add", "2001:db8::77/64", "dev", "lo", "nodad")
		child.expect(t, childChange, 10*time.Second)
	}

	child.stdin.Close() // the child cancels its Watch
	child.expect(t, childClosed, 10*time.Second)
}

// watchChild is the child's side: watch until stdin closes, report every
// Change, then report that the channel closed.
func watchChild(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ch, err := Watch(ctx, Config{Debounce: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fmt.Printf("%s%s\n", childPrefix, childReady)
	for c := range ch {
		fmt.Printf("%s%s %d\n", childPrefix, childChange, c.Events)
	}
	fmt.Printf("%s%s\n", childPrefix, childClosed)
}

// child is the watching process.
type child struct {
	stdin io.WriteCloser
	lines chan string // what it printed after childPrefix; closed at exit
}

// startChild runs this test binary as the watcher inside ns and waits
// until it is subscribed.
func startChild(t *testing.T, ns netns) *child {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ns.ipPath, "netns", "exec", ns.name, exe,
		"-test.run=^TestWatchInNamespace$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = tLogWriter{t, "child stderr"}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start watcher in %s: %v", ns.name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	c := &child{stdin: stdin, lines: make(chan string, 100)}
	go c.scan(t, stdout)
	c.expect(t, childReady, 30*time.Second)
	return c
}

func (c *child) scan(t *testing.T, r io.Reader) {
	defer close(c.lines)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), childPrefix); ok {
			c.lines <- line
		}
	}
}

// expect waits for the child's next line and checks it starts with want.
func (c *child) expect(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			t.Fatalf("watcher exited while waiting for %q", want)
		}
		t.Logf("watcher: %s", line)
		if !strings.HasPrefix(line, want) {
			t.Fatalf("watcher said %q, want %q", line, want)
		}
	case <-time.After(timeout):
		t.Fatalf("watcher did not say %q within %v", want, timeout)
	}
}

// expectQuiet checks the child says nothing for d.
func (c *child) expectQuiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case line := <-c.lines:
		t.Fatalf("watcher said %q, want nothing", line)
	case <-time.After(d):
	}
}

// netns is a network namespace made for one test.
type netns struct {
	name   string
	ipPath string
}

// newNetns creates a namespace deleted when the test ends. Without root or
// ip it skips the test, unless READYMESH_REQUIRE_NETNS=1 makes that a
// failure.
func newNetns(t *testing.T) netns {
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		ipPath = "/usr/sbin/ip"
	}
	switch {
	case os.Geteuid() != 0:
		skipNetns(t, "creating a network namespace needs root")
	case !executable(ipPath):
		skipNetns(t, "ip (iproute2) is not installed")
	}
	ns := netns{name: "rmnw-" + fmt.Sprint(os.Getpid()) + "-" + randHex(4), ipPath: ipPath}
	if out, err := exec.Command(ipPath, "netns", "add", ns.name).CombinedOutput(); err != nil {
		skipNetns(t, fmt.Sprintf("ip netns add %s: %v: %s", ns.name, err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ipPath, "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.name, err, out)
		}
	})
	return ns
}

// ip runs "ip -n NS args..." and fails the test if it fails.
func (ns netns) ip(t *testing.T, args ...string) {
	t.Helper()
	args = append([]string{"-n", ns.name}, args...)
	if out, err := exec.Command(ns.ipPath, args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func skipNetns(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("READYMESH_REQUIRE_NETNS") == "1" {
		t.Fatalf("%s (and READYMESH_REQUIRE_NETNS=1)", reason)
	}
	t.Skip(reason)
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
