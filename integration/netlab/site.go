package netlab

import (
	"fmt"
	"net/netip"
)

// SiteKind is how a site reaches the Internet, named by its NAT's RFC 4787
// behaviour. Every router drops unsolicited inbound traffic on its WAN side,
// as real routers do (see Site).
type SiteKind string

const (
	// Public puts the host directly on the public segment: no NAT, no
	// firewall, its address is its public address.
	Public SiteKind = "public"
	// Cone is endpoint-independent mapping with address-and-port-dependent
	// filtering (a "port-restricted cone", most home routers): nftables
	// masquerade, which keeps the host's source port whenever it is free.
	Cone SiteKind = "cone"
	// Symmetric is endpoint-dependent mapping (many carrier-grade NATs
	// and corporate firewalls): masquerade random, a fresh public port
	// for every destination address and port.
	Symmetric SiteKind = "symmetric"
	// UDPBlocked is a Cone router that also drops every forwarded UDP
	// packet, as corporate firewalls do: only TCP gets out.
	UDPBlocked SiteKind = "udp-blocked"
	// DoubleNAT is two Cone routers in a row: the site's own router on a
	// private LAN of an outer router (an ISP's box) that holds the public
	// address.
	DoubleNAT SiteKind = "double-nat"
)

// Site is a LAN host and the router(s) between it and an Internet.
//
// Namespaces, for a site called "office": the host is "office"; its router
// "office-rtr"; for DoubleNAT the outer router "office-isp" (all with the
// lab's prefix). Each NAT site n (numbered from 1 in order of creation on
// its Internet) has the private LAN 192.168.n.0/24, router .1 and host .2;
// a DoubleNAT site's two routers share 10.n.0.0/24, outer router .1, inner
// router .2. Inside a router the devices are "wan" and "lan"; in a host,
// "eth0".
//
// Routers forward LAN to WAN with NAT and drop, on the input and forward
// hooks, every packet arriving on "wan" that conntrack sees as new. The
// input rule matters for hole punching: a router that let an unsolicited
// packet reach its own stack would confirm a conntrack entry for it, and the
// host's own packet to that peer a moment later would clash with it and be
// given a new source port, breaking the punch between two cone NATs.
type Site struct {
	Kind SiteKind
	// Host is the LAN host, where an agent or a technician runs.
	Host *Host
	// Routers are the router namespaces, outermost first; none for Public.
	Routers []string
	// Public is the site's address on the public segment: the outermost
	// router's WAN address, or the host's own for Public.
	Public netip.Addr

	in *Internet
}

// Site creates a site of the given kind on the Internet and returns it.
func (in *Internet) Site(name string, kind SiteKind) *Site {
	l := in.lab
	l.t.Helper()
	switch kind {
	case Public:
		h := in.Server(name)
		return &Site{Kind: kind, Host: h, Public: h.Addr, in: in}
	case Cone, Symmetric, UDPBlocked, DoubleNAT:
	default:
		l.t.Fatalf("netlab: site %s: unknown kind %q", name, kind)
	}
	in.sites++
	n := in.sites
	if n > 254 {
		l.t.Fatalf("netlab: internet %s is out of private ranges", in.NS)
	}
	s := &Site{Kind: kind, in: in}
	rtr := l.Host(name + "-rtr")
	if kind == DoubleNAT {
		isp := l.Host(name + "-isp")
		s.Public = in.join(isp, "wan")
		l.lan(isp, rtr, "wan", fmt.Sprintf("10.%d.0", n))
		l.router(isp, Cone)
		s.Routers = []string{isp, rtr}
	} else {
		s.Public = in.join(rtr, "wan")
		s.Routers = []string{rtr}
	}
	host := l.Host(name)
	s.Host = &Host{NS: host, Addr: l.lan(rtr, host, "eth0", fmt.Sprintf("192.168.%d", n))}
	l.router(rtr, kind)
	return s
}

// lan links router rtr (device "lan", address net.1) to the namespace
// below it (device dev, address net.2), gives the latter a default route
// through rtr and returns its address. net is the first three octets of a
// /24.
func (l *Lab) lan(rtr, below, dev, net string) netip.Addr {
	l.t.Helper()
	l.veth(rtr, "lan", below, dev)
	l.up(rtr, "lan", net+".1/24")
	l.up(below, dev, net+".2/24")
	l.must("ip", "-n", below, "route", "add", "default", "via", net+".1")
	return netip.MustParseAddr(net + ".2")
}

// router makes namespace ns, with devices "wan" and "lan", a NAT router of
// the given kind (Cone, Symmetric or UDPBlocked). Its rules live in the
// tables "ip nat" and "inet fw"; the named counter "unsolicited" in "inet
// fw" counts the inbound packets dropped for being new.
func (l *Lab) router(ns string, kind SiteKind) {
	l.t.Helper()
	masq := "masquerade"
	if kind == Symmetric {
		masq = "masquerade random"
	}
	script := `
add table ip nat
add chain ip nat post { type nat hook postrouting priority srcnat ; }
add rule ip nat post oifname "wan" ` + masq + `
add table inet fw
add counter inet fw unsolicited
add chain inet fw inbound { type filter hook input priority filter ; }
add rule inet fw inbound iifname "wan" ct state new counter name "unsolicited" drop
add chain inet fw through { type filter hook forward priority filter ; }
add rule inet fw through iifname "wan" ct state new counter name "unsolicited" drop
`
	if kind == UDPBlocked {
		script += "add rule inet fw through meta l4proto udp drop\n"
	}
	l.nftScript(ns, script)
	l.Exec(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
}
