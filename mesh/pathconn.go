package mesh

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// pathConn is the technician's session socket as quic-go sees it. The
// relayed attempt dials a virtual address (from 240.0.0.0/4, reserved and
// never routed); pathConn sends packets for it to whatever real address is
// behind it now: the loopback end of the relay pump, later the agent's
// punched address. Moving a relayed session to the direct path is then a
// change of that mapping: the agent's QUIC server sees its client arrive
// from a new address, validates it and migrates, and no stream notices.
// (quic-go's own client migration, Conn.AddPath, keeps the remote address,
// which is exactly what must change here.)
//
// Only writes are mapped. A client connection does not look at the source
// of what it receives (connection IDs route packets), so reads need no
// mapping, and on a real socket pathConn keeps quic-go's fast path:
// batched reads, GSO and ECN through WriteMsgUDP.
type pathConn interface {
	net.PacketConn
	setRoute(virtual, real netip.AddrPort)
	dropRoute(virtual netip.AddrPort)
}

// routes maps virtual addresses to real ones, copied on write: every
// packet sent reads the map without a lock.
type routes struct {
	// mu serialises the writers of m (setRoute, dropRoute); readers load
	// m without it.
	mu sync.Mutex
	m  atomic.Pointer[map[netip.AddrPort]netip.AddrPort]
}

func (r *routes) setRoute(v, real netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[netip.AddrPort]netip.AddrPort{}
	if old := r.m.Load(); old != nil {
		for k, x := range *old {
			n[k] = x
		}
	}
	n[v] = real
	r.m.Store(&n)
}

func (r *routes) dropRoute(v netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[netip.AddrPort]netip.AddrPort{}
	if old := r.m.Load(); old != nil {
		for k, x := range *old {
			if k != v {
				n[k] = x
			}
		}
	}
	r.m.Store(&n)
}

// lookup returns where a packet for addr goes: mapped is false for
// addresses that are not virtual; drop is true for a virtual address
// without a route (an abandoned attempt).
func (r *routes) lookup(addr *net.UDPAddr) (real *net.UDPAddr, drop bool) {
	if addr == nil || !isVirtual(addr.IP) {
		return addr, false
	}
	m := r.m.Load()
	if m == nil {
		return nil, true
	}
	ap := addr.AddrPort()
	x, ok := (*m)[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]
	if !ok {
		return nil, true
	}
	return net.UDPAddrFromAddrPort(x), false
}

// isVirtual reports whether ip is in 240.0.0.0/4, the range virtual
// addresses are taken from.
func isVirtual(ip net.IP) bool {
	v4 := ip.To4()
	return v4 != nil && v4[0]&0xf0 == 240
}

// virtualAddr returns virtual address number n.
func virtualAddr(n uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{240, 0, 0, 1}), 1000+n)
}

func newPathConn(pc net.PacketConn) pathConn {
	if u, ok := pc.(*net.UDPConn); ok {
		return &udpPathConn{UDPConn: u}
	}
	return &basicPathConn{PacketConn: pc}
}

// udpPathConn is a real socket: quic-go finds SyscallConn, ReadMsgUDP and
// WriteMsgUDP on it and uses batched I/O and GSO; only the destination of
// writes is changed.
type udpPathConn struct {
	*net.UDPConn
	routes
}

func (c *udpPathConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		real, drop := c.lookup(ua)
		if drop {
			return len(b), nil // as a lossy path would
		}
		return c.UDPConn.WriteTo(b, real)
	}
	return c.UDPConn.WriteTo(b, addr)
}

func (c *udpPathConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	real, drop := c.lookup(addr)
	if drop {
		return len(b), len(oob), nil
	}
	return c.UDPConn.WriteMsgUDP(b, oob, real)
}

// basicPathConn wraps any PacketConn (pion's vnet in tests).
type basicPathConn struct {
	net.PacketConn
	routes
}

func (c *basicPathConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		real, drop := c.lookup(ua)
		if drop {
			return len(b), nil
		}
		return c.PacketConn.WriteTo(b, real)
	}
	return c.PacketConn.WriteTo(b, addr)
}
