// Package netlab builds test networks from Linux network namespaces, veth
// pairs and nftables, so the real binaries can be run on hosts whose
// networks a test controls: a UDP-blocking firewall, a partitioned
// cluster, or an Internet of sites behind NAT routers of the kinds RFC 4787
// names (Internet, Site), for testing hole punching against real kernels.
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
	return l.mustIn("", args...)
}

// mustIn is must with stdin as the command's standard input.
func (l *Lab) mustIn(stdin string, args ...string) string {
	l.t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// veth joins namespaces a and b with a veth pair whose ends are called aDev
// in a and bDev in b; an empty name keeps the generated, lab-prefixed one.
// It returns the two names. The ends have no address and are down.
func (l *Lab) veth(a, aDev, b, bDev string) (string, string) {
	l.t.Helper()
	l.links++
	ea := fmt.Sprintf("%sv%d", l.prefix, l.links) // at most 15 characters
	eb := fmt.Sprintf("%sw%d", l.prefix, l.links)
	l.must("ip", "link", "add", ea, "netns", a, "type", "veth", "peer", "name", eb, "netns", b)
	// Created under unique names, renamed inside their namespaces, so
	// "wan" or "eth0" can never meet a device of the same name elsewhere.
	if aDev != "" {
		l.must("ip", "-n", a, "link", "set", "dev", ea, "name", aDev)
		ea = aDev
	}
	if bDev != "" {
		l.must("ip", "-n", b, "link", "set", "dev", eb, "name", bDev)
		eb = bDev
	}
	return ea, eb
}

// up gives device dev in namespace ns the address addr (CIDR form, none if
// empty) and brings it up.
func (l *Lab) up(ns, dev, addr string) {
	l.t.Helper()
	if addr != "" {
		l.must("ip", "-n", ns, "addr", "add", addr, "dev", dev)
	}
	l.must("ip", "-n", ns, "link", "set", dev, "up")
}

// nftScript loads an nft script (one command per line, as nft -f reads)
// into namespace ns as one atomic transaction.
func (l *Lab) nftScript(ns, script string) {
	l.t.Helper()
	l.mustIn(script, "ip", "netns", "exec", ns, "nft", "-f", "-")
}
