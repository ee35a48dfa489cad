package netwatch

import "net/netip"

// This file decides which of the notifications Windows' IP helper sends
// (NotifyIpInterfaceChange, NotifyUnicastIpAddressChange and
// NotifyRouteChange2) describe a network change. It builds on every
// system, so the decisions are tested where the tests run; registering
// for the notifications lives in watch_windows.go.

// mibKind says which registration a notification came from.
type mibKind uint8

const (
	mibInterface mibKind = iota + 1 // NotifyIpInterfaceChange: MIB_IPINTERFACE_ROW
	mibAddress                      // NotifyUnicastIpAddressChange: MIB_UNICASTIPADDRESS_ROW
	mibRoute                        // NotifyRouteChange2: MIB_IPFORWARD_ROW2
)

// MIB_NOTIFICATION_TYPE values (netioapi.h).
const (
	mibParameterNotification = 0
	mibAddInstance           = 1
	mibDeleteInstance        = 2
	mibInitialNotification   = 3
)

// mibEvent is what a notification callback copies out of the row the
// system lends it, plus what the filtering goroutine learns afterwards.
type mibEvent struct {
	kind mibKind
	typ  uint32 // MIB_NOTIFICATION_TYPE
	// family is the row's address family (AF_INET 2, AF_INET6 23); luid
	// names the interface.
	family uint16
	luid   uint64
	// addr is a changed unicast address (mibAddress only).
	addr netip.Addr
	// prefixLen is a changed route's destination prefix length (mibRoute
	// only).
	prefixLen uint8
	// connected is whether the interface is connected to a network,
	// looked up after an interface parameter notification, whose row holds
	// only the interface's keys.
	connected bool
}

// mibLink is one IP interface: an interface and an address family.
type mibLink struct {
	luid   uint64
	family uint16
}

// mibFilter decides which notifications describe a network change, by the
// rules the Linux watcher follows:
//
//   - a unicast address added, removed or changed (its lifetimes renewed,
//     duplicate detection finished) counts, unless it is an IPv6 link-local
//     address (fe80::/10), which every interface gets and which says
//     nothing about how the machine reaches its broker;
//   - a default route (destination prefix length 0) added, removed or
//     changed counts; other routes do not;
//   - an IP interface added or removed counts (an adapter enabled or
//     disabled, a VPN adapter created); a parameter change counts only when
//     it changes whether the interface is connected (a cable pulled, a
//     Wi-Fi network joined or left), since Windows also sends one for
//     metric, MTU and timer changes.
//
// The initial notification (sent on registration when asked for) never
// counts. The zero value is ready; it is owned by the filtering goroutine.
type mibFilter struct {
	links links[mibLink]
}

func (f *mibFilter) relevant(ev mibEvent) bool {
	if ev.typ > mibDeleteInstance {
		return false
	}
	switch ev.kind {
	case mibAddress:
		return !(ev.addr.Is6() && ev.addr.IsLinkLocalUnicast())
	case mibRoute:
		return ev.prefixLen == 0
	case mibInterface:
		k := mibLink{luid: ev.luid, family: ev.family}
		if ev.typ == mibParameterNotification {
			return f.links.set(k, ev.connected)
		}
		f.links.forget(k)
		return true
	}
	return false
}
