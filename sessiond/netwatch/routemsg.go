package netwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// This file decodes the routing socket messages macOS writes (net/route.h)
// and decides which of them describe a network change. It builds on every
// system, so the decisions are tested where the tests run; only the socket
// itself lives in watch_darwin.go, which also checks at compile time that
// the constants below match the system's.

// Message types, version and header sizes of the macOS routing socket.
const (
	rtmVersion = 5

	rtmAdd     = 0x1 // a route was added
	rtmDelete  = 0x2 // a route was deleted
	rtmChange  = 0x3 // a route's gateway or metrics changed
	rtmNewAddr = 0xc // an address was added to an interface
	rtmDelAddr = 0xd // an address was removed from an interface
	rtmIfInfo  = 0xe // an interface's flags changed

	rtMsghdrLen  = 92  // struct rt_msghdr
	ifaMsghdrLen = 20  // struct ifa_msghdr
	ifMsghdrLen  = 112 // struct if_msghdr
)

// Socket address slots (RTAX_*), in the order the addresses follow the
// header, and the flags the filter reads.
const (
	rtaxDst     = 0
	rtaxNetmask = 2
	rtaxIfa     = 5
	rtaxCount   = 8

	rtfHost = 0x4 // route to one host, never a default route

	iffUp       = 0x1
	iffLoopback = 0x8
	iffRunning  = 0x40

	afInetDarwin  = 2
	afInet6Darwin = 30
)

// routeMsg is the part of one routing message the filter reads.
type routeMsg struct {
	typ   uint8
	index uint16 // interface index
	flags uint32 // rtm_flags of a route, ifm_flags of an interface
	errno int32  // non-zero when the kernel echoes a request that failed
	addrs [rtaxCount][]byte
}

// errShortMessage reports a message shorter than its header says.
var errShortMessage = errors.New("routing message truncated")

// parseRouteMsgs decodes the messages in b, one read from a routing
// socket. A message of another version or a type the filter ignores is
// skipped undecoded. It stops at the first malformed message and returns
// the ones before it with the error.
func parseRouteMsgs(b []byte) ([]routeMsg, error) {
	var msgs []routeMsg
	for len(b) > 0 {
		if len(b) < 4 {
			return msgs, fmt.Errorf("%w: %d bytes left", errShortMessage, len(b))
		}
		n := int(binary.NativeEndian.Uint16(b))
		if n < 4 || n > len(b) {
			return msgs, fmt.Errorf("%w: length %d, %d bytes read", errShortMessage, n, len(b))
		}
		if m, ok, err := parseRouteMsg(b[:n]); err != nil {
			return msgs, err
		} else if ok {
			msgs = append(msgs, m)
		}
		b = b[n:]
	}
	return msgs, nil
}

// parseRouteMsg decodes one message whose length has been checked. It
// reports false for a message the filter does not read.
func parseRouteMsg(b []byte) (routeMsg, bool, error) {
	m := routeMsg{typ: b[3]}
	if b[2] != rtmVersion {
		return m, false, nil
	}
	var hdr int
	var addrs uint32
	switch m.typ {
	case rtmAdd, rtmDelete, rtmChange:
		hdr = rtMsghdrLen
		if len(b) < hdr {
			return m, false, fmt.Errorf("%w: route message of %d bytes", errShortMessage, len(b))
		}
		m.index = binary.NativeEndian.Uint16(b[4:])
		m.flags = binary.NativeEndian.Uint32(b[8:])
		addrs = binary.NativeEndian.Uint32(b[12:])
		m.errno = int32(binary.NativeEndian.Uint32(b[24:]))
	case rtmNewAddr, rtmDelAddr, rtmIfInfo:
		hdr = ifaMsghdrLen
		if m.typ == rtmIfInfo {
			hdr = ifMsghdrLen
		}
		if len(b) < hdr {
			return m, false, fmt.Errorf("%w: interface message of %d bytes", errShortMessage, len(b))
		}
		addrs = binary.NativeEndian.Uint32(b[4:])
		m.flags = binary.NativeEndian.Uint32(b[8:])
		m.index = binary.NativeEndian.Uint16(b[12:])
	default:
		return m, false, nil
	}
	err := parseSockaddrs(b[hdr:], addrs, &m.addrs)
	return m, err == nil, err
}

// parseSockaddrs splits the socket addresses after a header into their
// slots. Each starts with its length and is padded to 4 bytes; a length of
// zero (an all-zero netmask) still takes 4 bytes.
func parseSockaddrs(b []byte, present uint32, slots *[rtaxCount][]byte) error {
	for i := range rtaxCount {
		if present&(1<<i) == 0 {
			continue
		}
		if len(b) == 0 {
			return fmt.Errorf("%w: socket address %d missing", errShortMessage, i)
		}
		n := int(b[0])
		if n > len(b) {
			return fmt.Errorf("%w: socket address %d of %d bytes, %d left", errShortMessage, i, n, len(b))
		}
		slots[i] = b[:n]
		b = b[min(len(b), sockaddrSpace(n)):]
	}
	return nil
}

// sockaddrSpace is how many bytes a socket address of length n takes.
func sockaddrSpace(n int) int {
	if n == 0 {
		return 4
	}
	return (n + 3) &^ 3
}

// sockaddrIP returns the address bytes of an IPv4 or IPv6 socket address,
// read as the given family, padded with the zeros a short netmask leaves
// out. It returns nil for other families.
func sockaddrIP(sa []byte, family byte) []byte {
	var off, n int
	switch family {
	case afInetDarwin:
		off, n = 4, 4 // sockaddr_in: len, family, port, address
	case afInet6Darwin:
		off, n = 8, 16 // sockaddr_in6: len, family, port, flow info, address
	default:
		return nil
	}
	ip := make([]byte, n)
	if len(sa) > off {
		copy(ip, sa[off:])
	}
	return ip
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// routeFilter decides which routing messages describe a network change,
// by the rules the Linux watcher follows:
//
//   - an address added or removed counts, unless it is an IPv6 link-local
//     address (fe80::/10), which every link gets and which says nothing
//     about how the machine reaches its broker;
//   - a default route added, removed or changed counts (macOS keeps one per
//     interface besides the primary one); host routes (ARP and neighbour
//     entries, cloned routes) and other networks' routes do not, and
//     neither does the kernel echoing a request that failed;
//   - an interface going up or down counts, which Linux learns from the
//     routes the kernel removes with the link. RTM_IFINFO is also sent for
//     MTU and multicast flag changes, so the filter remembers each link's
//     state and counts only a change of it, ignoring loopback and Apple's
//     peer-to-peer Wi-Fi links (awdl, llw) that come and go with AirDrop.
//
// It is owned by the goroutine reading the socket.
type routeFilter struct {
	links links[uint16]
	// name returns the name of the interface with that index, or "" when
	// it is gone. It must not be nil.
	name func(index int) string
}

// count returns how many of the messages in b describe a network change.
func (f *routeFilter) count(b []byte) (int, error) {
	msgs, err := parseRouteMsgs(b)
	n := 0
	for _, m := range msgs {
		if f.relevant(m) {
			n++
		}
	}
	return n, err
}

func (f *routeFilter) relevant(m routeMsg) bool {
	switch m.typ {
	case rtmNewAddr, rtmDelAddr:
		return !ipv6LinkLocal(m.addrs[rtaxIfa])
	case rtmAdd, rtmDelete, rtmChange:
		return m.errno == 0 && m.flags&rtfHost == 0 && defaultRoute(m.addrs[rtaxDst], m.addrs[rtaxNetmask])
	case rtmIfInfo:
		return f.linkChanged(m)
	}
	return false
}

// linkChanged reports whether an RTM_IFINFO message changes whether its
// interface is up and running.
func (f *routeFilter) linkChanged(m routeMsg) bool {
	if m.flags&iffLoopback != 0 {
		return false
	}
	up := m.flags&(iffUp|iffRunning) == iffUp|iffRunning
	return f.links.set(m.index, up) && !peerToPeer(f.name(int(m.index)))
}

// peerToPeer reports whether name is one of Apple's peer-to-peer Wi-Fi
// links, which never lead to the broker.
func peerToPeer(name string) bool {
	return strings.HasPrefix(name, "awdl") || strings.HasPrefix(name, "llw")
}

// ipv6LinkLocal reports whether sa is an IPv6 link-local socket address.
// macOS writes the scope into bytes 2 and 3 of such an address, which the
// fe80::/10 test does not read.
func ipv6LinkLocal(sa []byte) bool {
	if len(sa) < 2 || sa[1] != afInet6Darwin {
		return false
	}
	ip := sockaddrIP(sa, afInet6Darwin)
	return ip[0] == 0xfe && ip[1]&0xc0 == 0x80
}

// defaultRoute reports whether dst and netmask name a default route: the
// unspecified address with an all-zero (or no) netmask. The netmask's own
// family byte is unreliable (the kernel trims masks), so it is read in the
// destination's family.
func defaultRoute(dst, netmask []byte) bool {
	if len(dst) < 2 {
		return false
	}
	ip := sockaddrIP(dst, dst[1])
	if ip == nil || !allZero(ip) {
		return false
	}
	return netmask == nil || allZero(sockaddrIP(netmask, dst[1]))
}
