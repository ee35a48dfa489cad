package netlab

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestSiteMapping checks that each site kind maps as its RFC 4787 name
// says: from one source port the host sends to two ports of a public server,
// which reports the source it saw each time.
func TestSiteMapping(t *testing.T) {
	l := New(t, "nft")
	inet := l.Internet("inet")
	srv := inet.Server("stun")
	spawnNode(t, l, srv.NS, srv.Addr.String()+":3478", srv.Addr.String()+":3479")
	dst1, dst2 := netip.AddrPortFrom(srv.Addr, 3478), netip.AddrPortFrom(srv.Addr, 3479)

	kinds := []SiteKind{Public, Cone, Symmetric, UDPBlocked, DoubleNAT}
	sites := map[SiteKind]*Site{}
	for _, k := range kinds {
		sites[k] = inet.Site(string(k), k)
	}
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			s := sites[k]
			const port = 40000
			host := spawnNode(t, l, s.Host.NS, "0.0.0.0:40000")
			m1, ok1 := host.probe(t, port, dst1)
			m2, ok2 := host.probe(t, port, dst2)
			t.Logf("%s (public %s): %s:%d -> %s seen as %v, -> %s seen as %v", k, s.Public, s.Host.Addr, port, dst1, m1, dst2, m2)

			if k == UDPBlocked {
				if ok1 || ok2 {
					t.Errorf("UDP got through a UDP-blocking router: seen as %v, %v", m1, m2)
				}
			} else {
				if !ok1 || !ok2 {
					t.Fatalf("no UDP answer from the server (%v, %v)", ok1, ok2)
				}
				if m1.Addr() != s.Public || m2.Addr() != s.Public {
					t.Errorf("mapped addresses %v, %v; want the site's public address %s", m1, m2, s.Public)
				}
				switch k {
				case Public:
					if m1.Port() != port || m2.Port() != port {
						t.Errorf("public host's port rewritten: %v, %v; want %d", m1, m2, port)
					}
				case Symmetric:
					if m1.Port() == m2.Port() {
						t.Errorf("symmetric NAT mapped both destinations to port %d; want endpoint-dependent mapping", m1.Port())
					}
				default: // Cone, DoubleNAT: endpoint-independent mapping
					if m1.Port() != m2.Port() {
						t.Errorf("%s mapped two destinations to ports %d and %d; want endpoint-independent mapping", k, m1.Port(), m2.Port())
					}
				}
			}
			// TCP gets out of every kind, NATed to the site's address.
			if m, err := host.tcpProbe(t, dst1); err != "" || m.Addr() != s.Public {
				t.Errorf("TCP to the server: seen as %v (%s); want from %s", m, err, s.Public)
			}
		})
	}
}

// TestConeFiltering checks a Cone router's address-and-port-dependent
// filtering and its drop of unsolicited traffic, including the conntrack
// trap that drop exists for (see Site).
func TestConeFiltering(t *testing.T) {
	l := New(t, "nft")
	inet := l.Internet("inet")
	srv, other := inet.Server("srv"), inet.Server("other")
	site := inet.Site("home", Cone)
	rtr := site.Routers[0]
	s := spawnNode(t, l, srv.NS, srv.Addr.String()+":3478", srv.Addr.String()+":3479")
	o := spawnNode(t, l, other.NS, other.Addr.String()+":3478")
	h := spawnNode(t, l, site.Host.NS, "0.0.0.0:40000", "0.0.0.0:40001", "0.0.0.0:40002")
	srv1 := netip.AddrPortFrom(srv.Addr, 3478)
	// dropped waits until the router has counted n unsolicited packets in
	// all, so a test knows they arrived before it goes on.
	dropped := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		var got uint64
		for range 100 {
			if got = l.counters(rtr, "inet", "fw")["unsolicited"][0]; got >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got != n {
			t.Fatalf("router counted %d unsolicited packets, want %d", got, n)
		}
	}

	// Unsolicited: the server knocks on a port the host has never used.
	// The router drops the knocks; the host then sends to that very server
	// port and keeps its port: no conntrack entry was left to clash with.
	before := h.mark()
	for range 3 {
		s.send(t, 3478, netip.AddrPortFrom(site.Public, 40001), "knock")
	}
	dropped(3)
	mapped, ok := h.probe(t, 40001, srv1)
	if !ok || mapped != netip.AddrPortFrom(site.Public, 40001) {
		t.Errorf("after unsolicited knocks the host's :40001 is seen as %v (answered %v); want %s:40001", mapped, ok, site.Public)
	}
	if line, ok := h.wait(before, 0, func(s string) bool { return strings.HasSuffix(s, " knock") }); ok {
		t.Errorf("an unsolicited knock reached the host: %s", line)
	}

	// Filtering: once the host has sent to srv:3478, only srv:3478 gets
	// in; datagrams from another port of the same address, or from
	// another address, are dropped as unsolicited.
	if _, ok := h.probe(t, 40000, srv1); !ok {
		t.Fatal("no answer from the server")
	}
	before = h.mark()
	pub := netip.AddrPortFrom(site.Public, 40000)
	s.send(t, 3479, pub, "other-port")
	o.send(t, 3478, pub, "other-address")
	dropped(5)
	s.send(t, 3478, pub, "same-endpoint")
	if _, ok := h.wait(before, 2*time.Second, func(s string) bool { return strings.HasSuffix(s, " same-endpoint") }); !ok {
		t.Error("a datagram from the endpoint the host contacted did not get in")
	}
	if line, ok := h.wait(before, 0, func(s string) bool { return strings.HasSuffix(s, "-port") || strings.HasSuffix(s, "-address") }); ok {
		t.Errorf("a datagram from an endpoint the host never contacted got in: %s", line)
	}

	// The trap, reproduced: with the input rule counting instead of
	// dropping, an unsolicited datagram leaves a conntrack entry in the
	// router, and the host's own datagram to that server port afterwards
	// is given another port.
	l.Nft(rtr, "flush chain inet fw inbound")
	l.Nft(rtr, `add rule inet fw inbound iifname "wan" ct state new counter name "unsolicited"`)
	s.send(t, 3478, netip.AddrPortFrom(site.Public, 40002), "knock")
	dropped(6)
	if mapped, ok := h.probe(t, 40002, srv1); !ok || mapped.Port() == 40002 {
		t.Errorf("without the input drop, :40002 is seen as %v (answered %v); expected the conntrack clash to move it off 40002", mapped, ok)
	} else {
		t.Logf("without the input drop, an unsolicited knock moved the host's :40002 to %v", mapped)
	}
}

// TestHolePunch punches UDP between pairs of sites, each side sending to
// the mapped address the other learned from a public server and answering
// any punch it receives, as ICE does. It succeeds where at least one side
// maps independently of the destination and fails otherwise, and the
// sites' counters show the direct traffic.
func TestHolePunch(t *testing.T) {
	l := New(t, "nft")
	inet := l.Internet("inet")
	srv := inet.Server("stun")
	spawnNode(t, l, srv.NS, srv.Addr.String()+":3478")
	stun := netip.AddrPortFrom(srv.Addr, 3478)

	cases := []struct {
		a, b   SiteKind
		direct bool
	}{
		{Cone, Cone, true},
		{DoubleNAT, Cone, true},
		{Public, Symmetric, true}, // the public side answers the symmetric side's new port
		{Cone, Symmetric, false},
		{Symmetric, Symmetric, false},
	}
	for i, c := range cases {
		name := string(c.a) + "-" + string(c.b)
		a := inet.Site(name+"-a", c.a)
		b := inet.Site(name+"-b", c.b)
		a.CountUDP("peer", b.Public)
		b.CountUDP("peer", a.Public)
		var aGot, bGot bool
		t.Run(name, func(t *testing.T) {
			port := uint16(41000 + i)
			an := spawnNode(t, l, a.Host.NS, netip.AddrPortFrom(netip.IPv4Unspecified(), port).String())
			bn := spawnNode(t, l, b.Host.NS, netip.AddrPortFrom(netip.IPv4Unspecified(), port).String())
			am, ok1 := an.probe(t, port, stun)
			bm, ok2 := bn.probe(t, port, stun)
			if !ok1 || !ok2 {
				t.Fatal("a side could not learn its mapped address")
			}
			aGot, bGot = punch(t, an, bn, port, am, bm, a.Public, b.Public)
			t.Logf("%s (mapped %v) <-> %s (mapped %v): a heard b %v, b heard a %v", c.a, am, c.b, bm, aGot, bGot)
		})
		// Counters are read here: Lab methods belong to the lab's test.
		ac, bc := a.Counter("peer"), b.Counter("peer")
		t.Logf("%s: counters a %+v, b %+v", name, ac, bc)
		switch {
		case c.direct && !(aGot && bGot):
			t.Errorf("%s: punch failed, want a direct path", name)
		case !c.direct && (aGot || bGot):
			t.Errorf("%s: a datagram got through (a heard b %v, b heard a %v), want none", name, aGot, bGot)
		case c.direct && (ac.InPackets == 0 || ac.OutPackets == 0 || bc.InPackets == 0 || bc.OutPackets == 0):
			t.Errorf("%s: direct, yet the counters miss a direction: a %+v, b %+v", name, ac, bc)
		case !c.direct && (ac.InPackets != 0 || bc.InPackets != 0 || ac.OutPackets == 0):
			t.Errorf("%s: failed punch should count out and no in: a %+v, b %+v", name, ac, bc)
		}
	}
}

// punch has nodes a and b, both on port, send punches to each other's
// mapped address every 20 ms until each has heard from the other's public
// address, for at most 1.5 s. It reports what each heard.
func punch(t *testing.T, a, b *node, port uint16, aMapped, bMapped netip.AddrPort, aPublic, bPublic netip.Addr) (aGot, bGot bool) {
	t.Helper()
	since := [2]int{a.mark(), b.mark()}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for i := 0; i < 75 && time.Now().Before(deadline); i++ {
		a.send(t, port, bMapped, "punch")
		b.send(t, port, aMapped, "punch")
		time.Sleep(20 * time.Millisecond)
		aGot = a.received(since[0], port, 0, func(s netip.AddrPort) bool { return s.Addr() == bPublic })
		bGot = b.received(since[1], port, 0, func(s netip.AddrPort) bool { return s.Addr() == aPublic })
		if aGot && bGot {
			break
		}
	}
	return aGot, bGot
}
