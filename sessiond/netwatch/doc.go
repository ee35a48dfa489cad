// Package netwatch tells the agent when its machine's network changed, so
// it can check in at once instead of waiting for the next interval.
//
// A laptop that moves from the office to a hotel keeps its bridge to the
// broker only if the agent notices quickly: its addresses, and so the
// candidates a technician's session would use, are stale from that moment.
// Watch reports two kinds of change, an interface address added or removed
// and a default route added or removed, which between them cover a new
// network, a lost network, a VPN coming up and a DHCP lease moving. Other
// route changes (a container bridge's subnet, say) are ignored, and so are
// IPv6 link-local addresses, which every link gets. On macOS and Windows a
// link going up or down counts too, since their notifications report it
// directly; the Linux watcher leaves it to the address and route changes
// that follow.
//
// The kernel reports one change as several events (a DHCP renewal replaces
// the address and then the route), so Watch folds the events of a burst
// into one Change after a debounce window.
//
// Each system reports changes its own way, and each watcher applies the
// same rules to decide which ones matter:
//
//   - On Linux the events come from route netlink (watch_linux.go).
//   - On macOS they come from a routing socket (watch_darwin.go);
//     routemsg.go decodes its messages and filters them.
//   - On Windows they come from the IP helper's change notifications for
//     interfaces, addresses and routes (watch_windows.go), filtered in
//     mib.go. Wine implements these as stubs that never call back, so
//     there Watch fails as on an unsupported system.
//
// Elsewhere, and where the system's notifications are unavailable, Watch
// returns an error wrapping errors.ErrUnsupported and the agent relies on
// its check-in interval.
package netwatch
