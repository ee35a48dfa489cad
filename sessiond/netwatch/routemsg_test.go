package netwatch

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// newAddrEn0 is an RTM_NEWADDR message as macOS writes it when DHCP gives
// en0 (index 6) 192.168.1.23/24, assembled byte by byte from net/route.h
// (there is no Mac here to capture one from): the ifa_msghdr, then the
// netmask trimmed to its non-zero bytes, en0's link address, the address
// and the broadcast address, each padded to 4 bytes.
const newAddrEn0 = "" +
	"5000" + "05" + "0c" + "b4000000" + "00000000" + "0600" + "0000" + "00000000" +
	"07020000ffffff00" +
	"1412" + "0600" + "06" + "03" + "06" + "00" + "656e30" + "a483e7123456" + "000000" +
	"10020000c0a801170000000000000000" +
	"10020000c0a801ff0000000000000000"

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sin and sin6 build IPv4 and IPv6 socket addresses as macOS lays them out.
func sin(a string) []byte {
	b := make([]byte, 16)
	b[0], b[1] = 16, afInetDarwin
	ip := netip.MustParseAddr(a).As4()
	copy(b[4:], ip[:])
	return b
}

func sin6(a string) []byte {
	b := make([]byte, 28)
	b[0], b[1] = 28, afInet6Darwin
	ip := netip.MustParseAddr(a).As16()
	copy(b[8:], ip[:])
	return b
}

// trimmedMask is a netmask as the kernel writes it: cut after its last
// non-zero byte, the length byte saying so, zero length for /0.
func trimmedMask(full []byte) []byte {
	n := len(full)
	for n > 2 && full[n-1] == 0 {
		n--
	}
	if n <= 4 && allZero(full[2:]) {
		return []byte{}
	}
	m := append([]byte(nil), full[:n]...)
	m[0] = byte(n)
	return m
}

// appendSockaddrs appends the addresses present in addrs, in slot order,
// padded as the kernel pads them, and returns the bitmask.
func appendSockaddrs(b []byte, addrs map[int][]byte) ([]byte, uint32) {
	var present uint32
	for i := range rtaxCount {
		sa, ok := addrs[i]
		if !ok {
			continue
		}
		present |= 1 << i
		pad := make([]byte, sockaddrSpace(len(sa)))
		copy(pad, sa)
		b = append(b, pad...)
	}
	return b, present
}

// routeMessage builds an rt_msghdr message.
func routeMessage(typ byte, flags uint32, errno int32, addrs map[int][]byte) []byte {
	b, present := appendSockaddrs(make([]byte, rtMsghdrLen), addrs)
	binary.NativeEndian.PutUint16(b, uint16(len(b)))
	b[2], b[3] = rtmVersion, typ
	binary.NativeEndian.PutUint16(b[4:], 6)
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], present)
	binary.NativeEndian.PutUint32(b[24:], uint32(errno))
	return b
}

// addrMessage builds an ifa_msghdr message for index 6.
func addrMessage(typ byte, addrs map[int][]byte) []byte {
	b, present := appendSockaddrs(make([]byte, ifaMsghdrLen), addrs)
	binary.NativeEndian.PutUint16(b, uint16(len(b)))
	b[2], b[3] = rtmVersion, typ
	binary.NativeEndian.PutUint32(b[4:], present)
	binary.NativeEndian.PutUint16(b[12:], 6)
	return b
}

// ifMessage builds an RTM_IFINFO message, which carries no addresses.
func ifMessage(index uint16, flags uint32) []byte {
	b := make([]byte, ifMsghdrLen)
	binary.NativeEndian.PutUint16(b, uint16(len(b)))
	b[2], b[3] = rtmVersion, rtmIfInfo
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint16(b[12:], index)
	return b
}

func TestRouteFilterMessages(t *testing.T) {
	const (
		rtfUp, rtfGateway, rtfStatic, rtfIfScope = 0x1, 0x2, 0x800, 0x1000000
		rtmGet, rtmMiss, rtmNewMAddr, eexist     = 0x4, 0x7, 0xf, 17
	)
	gw := rtfUp | rtfGateway | rtfStatic
	defaultV4 := map[int][]byte{rtaxDst: sin("0.0.0.0"), 1: sin("192.168.1.1"), rtaxNetmask: {}}
	defaultV6 := map[int][]byte{rtaxDst: sin6("::"), 1: sin6("fe80::1"), rtaxNetmask: trimmedMask(sin6("::"))}
	subnet := map[int][]byte{rtaxDst: sin("10.0.0.0"), 1: sin("192.168.1.1"), rtaxNetmask: trimmedMask(sin("255.0.0.0"))}
	halfDefault := map[int][]byte{rtaxDst: sin("0.0.0.0"), 1: sin("10.8.0.1"), rtaxNetmask: trimmedMask(sin("128.0.0.0"))}
	oldVersion := routeMessage(rtmAdd, uint32(gw), 0, defaultV4)
	oldVersion[2] = 4
	tests := []struct {
		name string
		msg  []byte
		want bool
	}{
		{"DHCP address on en0", mustHex(t, newAddrEn0), true},
		{"global IPv6 address removed", addrMessage(rtmDelAddr, map[int][]byte{rtaxIfa: sin6("2001:db8::5")}), true},
		{"IPv6 link-local address, scope in bytes 2-3", addrMessage(rtmNewAddr, map[int][]byte{rtaxIfa: sin6("fe80:6::a6f:1")}), false},
		{"IPv4 link-local address (DHCP failed)", addrMessage(rtmNewAddr, map[int][]byte{rtaxIfa: sin("169.254.7.7")}), true},
		{"address message without the address", addrMessage(rtmNewAddr, nil), true},
		{"default route added, zero-length netmask", routeMessage(rtmAdd, uint32(gw), 0, defaultV4), true},
		{"scoped default route deleted", routeMessage(rtmDelete, uint32(gw|rtfIfScope), 0, defaultV4), true},
		{"IPv6 default route changed", routeMessage(rtmChange, uint32(gw), 0, defaultV6), true},
		{"default route without netmask", routeMessage(rtmAdd, uint32(gw), 0, map[int][]byte{rtaxDst: sin("0.0.0.0")}), true},
		{"subnet route", routeMessage(rtmAdd, uint32(gw), 0, subnet), false},
		{"a VPN's 0.0.0.0/1 (its address counts)", routeMessage(rtmAdd, uint32(gw), 0, halfDefault), false},
		{"host route (ARP entry)", routeMessage(rtmAdd, rtfUp|rtfHost, 0, map[int][]byte{rtaxDst: sin("192.168.1.1")}), false},
		{"0.0.0.0 host route", routeMessage(rtmAdd, rtfUp|rtfHost, 0, map[int][]byte{rtaxDst: sin("0.0.0.0")}), false},
		{"failed request echoed", routeMessage(rtmAdd, uint32(gw), eexist, defaultV4), false},
		{"someone's RTM_GET of the default route", routeMessage(rtmGet, uint32(gw), 0, defaultV4), false},
		{"route miss", routeMessage(rtmMiss, 0, 0, defaultV4), false},
		{"multicast address", addrMessage(rtmNewMAddr, map[int][]byte{rtaxIfa: sin("224.0.0.251")}), false},
		{"message of another version", oldVersion, false},
	}
	for _, tt := range tests {
		f := &routeFilter{name: func(int) string { return "en0" }}
		n, err := f.count(tt.msg)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if got := n == 1; got != tt.want {
			t.Errorf("%s: relevant = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRouteFilterLinks(t *testing.T) {
	names := map[int]string{4: "en0", 9: "awdl0", 12: "utun3", 1: "lo0"}
	f := &routeFilter{name: func(i int) string { return names[i] }}
	f.links.set(4, true) // as seeded from the interface list
	const running = iffUp | iffRunning
	steps := []struct {
		name  string
		index uint16
		flags uint32
		want  bool
	}{
		{"en0 MTU changed, still up", 4, running | 0x8000, false},
		{"en0 down", 4, 0, true},
		{"en0 still down", 4, 0, false},
		{"en0 up but not running", 4, iffUp, false},
		{"en0 running again", 4, running, true},
		{"awdl0 up (AirDrop)", 9, running, false},
		{"awdl0 down", 9, 0, false},
		{"loopback", 1, running | iffLoopback, false},
		{"new VPN tunnel up", 12, running, true},
		{"unknown interface down", 13, 0, false},
	}
	for _, s := range steps {
		n, err := f.count(ifMessage(s.index, s.flags))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := n == 1; got != s.want {
			t.Errorf("%s: relevant = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestRouteFilterBatch(t *testing.T) {
	// One read can hold several messages: a DHCP lease gives an address,
	// a subnet route and a default route.
	var b []byte
	b = append(b, mustHex(t, newAddrEn0)...)
	b = append(b, routeMessage(rtmAdd, 0x3, 0, map[int][]byte{rtaxDst: sin("192.168.1.0"), rtaxNetmask: trimmedMask(sin("255.255.255.0"))})...)
	b = append(b, routeMessage(rtmAdd, 0x3, 0, map[int][]byte{rtaxDst: sin("0.0.0.0"), rtaxNetmask: {}})...)
	f := &routeFilter{name: func(int) string { return "" }}
	if n, err := f.count(b); n != 2 || err != nil {
		t.Errorf("count = %d, %v; want 2, nil", n, err)
	}
}

func TestParseRouteMsgsMalformed(t *testing.T) {
	good := mustHex(t, newAddrEn0)
	shortRoute := routeMessage(rtmAdd, 0, 0, nil)[:40]
	binary.NativeEndian.PutUint16(shortRoute, 40)
	longSockaddr := addrMessage(rtmNewAddr, map[int][]byte{rtaxIfa: sin("192.0.2.1")})
	longSockaddr[ifaMsghdrLen] = 200
	missingSockaddr := addrMessage(rtmNewAddr, nil)
	binary.NativeEndian.PutUint32(missingSockaddr[4:], 1<<rtaxIfa)
	tests := []struct {
		name string
		b    []byte
	}{
		{"three bytes", []byte{4, 0, 5}},
		{"length below header", []byte{2, 0, 5, rtmNewAddr}},
		{"length beyond read", good[:30]},
		{"route message shorter than rt_msghdr", shortRoute},
		{"socket address beyond message", longSockaddr},
		{"socket address announced, absent", missingSockaddr},
	}
	for _, tt := range tests {
		msgs, err := parseRouteMsgs(append(append([]byte(nil), good...), tt.b...))
		if !errors.Is(err, errShortMessage) {
			t.Errorf("%s: err = %v, want errShortMessage", tt.name, err)
		}
		if len(msgs) != 1 {
			t.Errorf("%s: %d messages before the bad one, want 1", tt.name, len(msgs))
		}
	}
}

// FuzzParseRouteMsgs feeds arbitrary reads to the parser and the filter:
// neither may panic, and every address the parser returns lies inside its
// message.
func FuzzParseRouteMsgs(f *testing.F) {
	f.Add(mustHex(f, newAddrEn0))
	f.Add(routeMessage(rtmAdd, 0x3, 0, map[int][]byte{rtaxDst: sin6("::"), rtaxNetmask: {}}))
	f.Add(ifMessage(4, iffUp|iffRunning))
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := parseRouteMsgs(b)
		if err != nil && !strings.Contains(err.Error(), errShortMessage.Error()) {
			t.Fatalf("unexpected error %v", err)
		}
		for _, m := range msgs {
			for _, sa := range m.addrs {
				if len(sa) > len(b) {
					t.Fatalf("address of %d bytes from a read of %d", len(sa), len(b))
				}
			}
		}
		filter := &routeFilter{name: func(int) string { return "" }}
		filter.count(b)
	})
}
