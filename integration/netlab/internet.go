package netlab

import (
	"encoding/binary"
	"net/netip"
)

// PublicPrefix is the address range of every Internet's public segment.
//
// It is deliberately not TEST-NET (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24), RFC 1918 or the CGNAT range 100.64.0.0/10: libp2p
// (go-multiaddr's manet.IsPublicAddr) classes those as unroutable or private
// and never hole-punches to them, so sites on such a segment would never try
// a direct path. 7.0.0.0/8 is ordinary global unicast space to every
// classifier (netip.Addr.IsGlobalUnicast, IsPrivate, manet), yet nothing of
// the real 7/8 is ever reached: the segment is a bridge in a namespace of
// its own with no link to the machine's network, so a packet to any address
// the lab did not hand out goes unanswered inside the lab.
var PublicPrefix = netip.MustParsePrefix("7.0.0.0/16")

// Internet is a public segment: a Linux bridge in a namespace of its own
// that servers (Server) and sites' outermost routers (Site) join, each with
// the next address of PublicPrefix (7.0.0.1, 7.0.0.2, …, in order of
// creation). Everything on it reaches everything else on it directly.
type Internet struct {
	// NS is the namespace holding the bridge; nothing else lives there.
	NS string

	// lab and the counters are owned by the test goroutine that made the
	// Internet; its methods must be called from there.
	lab   *Lab
	addrs int // public addresses handed out
	sites int // sites with private ranges, numbering those ranges
}

// Host is a namespace and its address on the segment it was made for.
// (Lab.Host, older, returns a bare namespace name.)
type Host struct {
	// NS names the namespace, for Lab.Command, Lab.Exec and Lab.Nft.
	NS string
	// Addr is the host's address: public for a server or a Public site's
	// host, private behind a NAT site's router.
	Addr netip.Addr
}

// inetBridge is the bridge's name in Internet.NS. ("br" would not do: ip
// reads it as the broadcast keyword.)
const inetBridge = "inetbr"

// Internet creates an empty public segment. Its namespace is named after
// name, with the lab's prefix.
func (l *Lab) Internet(name string) *Internet {
	l.t.Helper()
	ns := l.Host(name)
	l.must("ip", "-n", ns, "link", "add", "name", inetBridge, "type", "bridge")
	l.must("ip", "-n", ns, "link", "set", inetBridge, "up")
	return &Internet{NS: ns, lab: l}
}

// Server creates a host namespace directly on the public segment, such as
// a broker or a STUN-like reflector, and returns it.
func (in *Internet) Server(name string) *Host {
	in.lab.t.Helper()
	ns := in.lab.Host(name)
	return &Host{NS: ns, Addr: in.join(ns, "eth0")}
}

// join connects namespace ns to the segment through a device called dev,
// gives it the next public address and a default route out of dev, and
// returns the address.
//
// The default route is on-link: real hosts have one, and software that
// picks its outbound interface from it (libp2p's netroute, for one) needs
// it. A packet to an address nobody in the lab holds dies on the bridge.
func (in *Internet) join(ns, dev string) netip.Addr {
	l := in.lab
	l.t.Helper()
	in.addrs++
	base := PublicPrefix.Addr().As4()
	n := binary.BigEndian.Uint32(base[:]) + uint32(in.addrs)
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], n)
	addr := netip.AddrFrom4(a)
	if !PublicPrefix.Contains(addr.Next()) {
		// Past the last host address: 65,534 hosts is far more than a
		// test should build.
		l.t.Fatalf("netlab: internet %s is out of public addresses", in.NS)
	}
	_, port := l.veth(ns, dev, in.NS, "")
	l.must("ip", "-n", in.NS, "link", "set", port, "master", inetBridge)
	l.up(in.NS, port, "")
	l.up(ns, dev, netip.PrefixFrom(addr, PublicPrefix.Bits()).String())
	l.must("ip", "-n", ns, "route", "add", "default", "dev", dev)
	return addr
}
