// Package netlab builds test networks from Linux network namespaces, veth
// pairs and nftables, so the real binaries can be run on hosts whose
// networks a test controls: a UDP-blocking firewall today, NAT routers for
// hole punching later.
//
// Everything a Lab creates carries a random per-run prefix, so two runs at
// once never collide, and is deleted in the test's cleanup, even when the
// test fails. Traffic stays inside the namespaces the lab made.
//
// Labs need root and iproute2 (nftables for firewall rules). Without them a
// test skips with the reason; with READYMESH_REQUIRE_NETNS=1 (set by CI) it
// fails instead, so CI never passes by skipping.
package netlab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Lab is a set of network namespaces owned by one test.
type Lab struct {
	t      testing.TB
	prefix string
	links  int
}

// Require checks that labs can be built here, skipping (or, with
// READYMESH_REQUIRE_NETNS=1, failing) the test with the reason if not.
// tools lists commands needed besides ip, such as "nft".
func Require(t testing.TB, tools ...string) {
	t.Helper()
	var why []string
	if os.Geteuid() != 0 {
		why = append(why, "not root")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			why = append(why, tool+" not installed (make deps installs it)")
		}
	}
	if len(why) == 0 {
		return
	}
	msg := "network-namespace lab unavailable: " + strings.Join(why, "; ")
	if os.Getenv("READYMESH_REQUIRE_NETNS") == "1" {
		t.Fatal(msg + " (READYMESH_REQUIRE_NETNS=1)")
	}
	t.Skip(msg)
}

// New returns an empty lab. It calls Require first.
func New(t testing.TB, tools ...string) *Lab {
	t.Helper()
	Require(t, tools...)
	var b [3]byte
	rand.Read(b[:])
	return &Lab{t: t, prefix: "rm" + hex.EncodeToString(b[:])}
}

// Host creates a namespace with its loopback up and returns its name.
func (l *Lab) Host(name string) string {
	l.t.Helper()
	ns := l.prefix + "-" + name
	l.must("ip", "netns", "add", ns)
	l.t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	l.must("ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// Link joins namespaces a and b with a veth pair, giving each end an
// address in CIDR form (such as 10.213.1.1/24), and brings both up.
func (l *Lab) Link(a, aAddr, b, bAddr string) {
	l.t.Helper()
	l.links++
	ea := fmt.Sprintf("%sa%d", l.prefix, l.links) // at most 15 characters
	eb := fmt.Sprintf("%sb%d", l.prefix, l.links)
	l.must("ip", "link", "add", ea, "netns", a, "type", "veth", "peer", "name", eb, "netns", b)
	l.must("ip", "-n", a, "addr", "add", aAddr, "dev", ea)
	l.must("ip", "-n", b, "addr", "add", bAddr, "dev", eb)
	l.must("ip", "-n", a, "link", "set", ea, "up")
	l.must("ip", "-n", b, "link", "set", eb, "up")
}

// Switch creates a namespace holding a Linux bridge, a shared segment that
// hosts join with Attach, and returns the namespace's name.
func (l *Lab) Switch(name string) string {
	l.t.Helper()
	ns := l.Host(name)
	l.must("ip", "-n", ns, "link", "add", "name", "sw", "type", "bridge")
	l.must("ip", "-n", ns, "link", "set", "sw", "up")
	return ns
}

// Attach joins host to the switch namespace sw with a veth pair, giving the
// host end addr (CIDR form).
func (l *Lab) Attach(host, sw, addr string) {
	l.t.Helper()
	l.links++
	eh := fmt.Sprintf("%sh%d", l.prefix, l.links)
	es := fmt.Sprintf("%ss%d", l.prefix, l.links)
	l.must("ip", "link", "add", eh, "netns", host, "type", "veth", "peer", "name", es, "netns", sw)
	l.must("ip", "-n", host, "addr", "add", addr, "dev", eh)
	l.must("ip", "-n", host, "link", "set", eh, "up")
	l.must("ip", "-n", sw, "link", "set", es, "master", "sw")
	l.must("ip", "-n", sw, "link", "set", es, "up")
}

// Nft runs one nft command in namespace ns, e.g. "add table inet f".
func (l *Lab) Nft(ns string, rule string) {
	l.t.Helper()
	l.must("ip", "netns", "exec", ns, "sh", "-c", "nft "+rule)
}

// Exec runs a command in namespace ns and fails the test if it fails.
func (l *Lab) Exec(ns string, args ...string) string {
	l.t.Helper()
	return l.must(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// Command returns a command that runs bin with args in namespace ns.
func (l *Lab) Command(ns, bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
}

func (l *Lab) must(args ...string) string {
	l.t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}
