// Package netwatch tells the agent when its machine's network changed, so
// it can check in at once instead of waiting for the next interval.
//
// A laptop that moves from the office to a hotel keeps its bridge to the
// broker only if the agent notices quickly: its addresses, and so the
// candidates a technician's session would use, are stale from that moment.
// Watch reports two kinds of change, an interface address added or removed
// and a default route added or removed, which between them cover a new
// network, a lost network, a VPN coming up and a DHCP lease moving. Other
// route changes (a container bridge's subnet, say) are ignored.
//
// The kernel reports one change as several events (a DHCP renewal replaces
// the address and then the route), so Watch folds the events of a burst
// into one Change after a debounce window.
//
// On Linux the events come from route netlink; elsewhere Watch returns an
// error wrapping errors.ErrUnsupported and the agent relies on its
// check-in interval.
package netwatch
