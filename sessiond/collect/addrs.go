package collect

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/readymesh/readymesh/peer/wire"
)

// collectAddresses fills s.Addresses with the addresses of the interfaces
// that are up, skipping loopback. These are the machine's own view; what
// the broker observes from outside comes from the bridge, not from here.
func (m machine) collectAddresses(_ context.Context, s *wire.Snapshot) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("addresses: %w", err)
	}
	var out []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		out = appendAddrs(out, addrs)
	}
	s.Addresses = out
	return nil
}

// appendAddrs appends the reportable addresses among addrs, without their
// prefix length.
func appendAddrs(out []string, addrs []net.Addr) []string {
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if ok && reportable(ip.Unmap()) {
			out = append(out, ip.Unmap().String())
		}
	}
	return out
}

// reportable leaves out loopback addresses and IPv6 link-local ones, which
// every interface has and which mean nothing off the link. IPv4
// link-local (169.254/16) stays: it says DHCP failed.
func reportable(ip netip.Addr) bool {
	if !ip.IsValid() || ip.IsLoopback() || ip.IsUnspecified() {
		return false
	}
	return !(ip.Is6() && ip.IsLinkLocalUnicast())
}
