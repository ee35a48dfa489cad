package netwatch

import (
	"net/netip"
	"testing"
)

func TestMIBFilter(t *testing.T) {
	const afInet, afInet6 = 2, 23 // Windows' values
	addr := func(typ uint32, a string) mibEvent {
		return mibEvent{kind: mibAddress, typ: typ, addr: netip.MustParseAddr(a)}
	}
	route := func(typ uint32, prefixLen uint8) mibEvent {
		return mibEvent{kind: mibRoute, typ: typ, family: afInet, prefixLen: prefixLen}
	}
	iface := func(typ uint32, luid uint64, connected bool) mibEvent {
		return mibEvent{kind: mibInterface, typ: typ, family: afInet6, luid: luid, connected: connected}
	}
	// Steps run in order on one filter, which remembers interfaces.
	steps := []struct {
		name string
		ev   mibEvent
		want bool
	}{
		{"DHCP address added", addr(mibAddInstance, "192.168.1.23"), true},
		{"address lifetimes renewed", addr(mibParameterNotification, "192.168.1.23"), true},
		{"global IPv6 address removed", addr(mibDeleteInstance, "2001:db8::5"), true},
		{"IPv6 link-local address added", addr(mibAddInstance, "fe80::1c2d:3e4f:5a6b:7c8d"), false},
		{"IPv4 link-local address (DHCP failed)", addr(mibAddInstance, "169.254.7.7"), true},
		{"initial notification", mibEvent{kind: mibAddress, typ: mibInitialNotification}, false},
		{"default route added", route(mibAddInstance, 0), true},
		{"default route metric changed", route(mibParameterNotification, 0), true},
		{"default route deleted", route(mibDeleteInstance, 0), true},
		{"subnet route added", route(mibAddInstance, 24), false},
		{"host route deleted", route(mibDeleteInstance, 32), false},
		{"VPN adapter's interface added", iface(mibAddInstance, 7, false), true},
		{"it connects", iface(mibParameterNotification, 7, true), true},
		{"its metric changes", iface(mibParameterNotification, 7, true), false},
		{"it disconnects", iface(mibParameterNotification, 7, false), true},
		{"still disconnected, MTU changes", iface(mibParameterNotification, 7, false), false},
		{"interface removed", iface(mibDeleteInstance, 7, false), true},
		{"unknown interface, disconnected", iface(mibParameterNotification, 8, false), false},
		{"unknown interface, connected", iface(mibParameterNotification, 9, true), true},
		{"unknown notification type", mibEvent{kind: mibRoute, typ: 7}, false},
		{"unknown kind", mibEvent{typ: mibAddInstance}, false},
	}
	var f mibFilter
	for _, s := range steps {
		if got := f.relevant(s.ev); got != s.want {
			t.Errorf("%s: relevant = %v, want %v", s.name, got, s.want)
		}
	}
}
