package mesh

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// pathConn is the technician's session socket as quic-go sees it. The
// technician dials QUIC to a virtual address per attempt; pathConn maps
// each virtual address to the real one currently behind it (a candidate of
// the agent, or the loopback end of the relay pump). Moving a relayed
// connection to a punched direct path is then a change of that mapping:
// the agent's QUIC server sees its client arrive from a new address,
// validates it and migrates, and no stream notices.
//
// Only QUIC packets are mapped; STUN (server-reflexive discovery and
// probes) keeps real addresses, so the socket's probe machinery works
// unchanged.
type pathConn struct {
	udp    net.PacketConn
	routes atomic.Pointer[routeTable]
	mu     sync.Mutex // serialises route changes

	// Packets received per route kind, so the technician can tell which
	// path the agent's answers really take.
	direct, relayed atomic.Uint64
}

type routeTable struct {
	toReal   map[virtualAddr]route
	toVirt   map[netip.AddrPort]virtualAddr
	relayFor map[netip.AddrPort]bool
}

type route struct {
	addr    netip.AddrPort
	relayed bool
}

// virtualAddr names one dial attempt.
type virtualAddr string

func (v virtualAddr) Network() string { return "readymesh" }
func (v virtualAddr) String() string  { return string(v) }

func newPathConn(udp net.PacketConn) *pathConn {
	c := &pathConn{udp: udp}
	c.routes.Store(&routeTable{toReal: map[virtualAddr]route{}, toVirt: map[netip.AddrPort]virtualAddr{}, relayFor: map[netip.AddrPort]bool{}})
	return c
}

// setRoute points v at addr; previous addresses of v keep mapping back to
// v, so packets still in flight on the old path are not lost.
func (c *pathConn) setRoute(v virtualAddr, addr netip.AddrPort, relayed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.routes.Load()
	nt := &routeTable{toReal: map[virtualAddr]route{}, toVirt: map[netip.AddrPort]virtualAddr{}, relayFor: map[netip.AddrPort]bool{}}
	for k, r := range old.toReal {
		nt.toReal[k] = r
	}
	for k, r := range old.toVirt {
		nt.toVirt[k] = r
	}
	for k, r := range old.relayFor {
		nt.relayFor[k] = r
	}
	nt.toReal[v] = route{addr: addr, relayed: relayed}
	nt.toVirt[addr] = v
	nt.relayFor[addr] = relayed
	c.routes.Store(nt)
}

// dropRoute forgets v.
func (c *pathConn) dropRoute(v virtualAddr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.routes.Load()
	nt := &routeTable{toReal: map[virtualAddr]route{}, toVirt: map[netip.AddrPort]virtualAddr{}, relayFor: old.relayFor}
	for k, r := range old.toReal {
		if k != v {
			nt.toReal[k] = r
		}
	}
	for k, r := range old.toVirt {
		if r != v {
			nt.toVirt[k] = r
		}
	}
	c.routes.Store(nt)
}

func (c *pathConn) current(v virtualAddr) (route, bool) {
	r, ok := c.routes.Load().toReal[v]
	return r, ok
}

func (c *pathConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.udp.ReadFrom(b)
	if err != nil {
		return n, addr, err
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return n, addr, nil
	}
	from := ua.AddrPort()
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if n > 0 && b[0]&0x40 != 0 { // QUIC's fixed bit; STUN has it clear
		rt := c.routes.Load()
		if v, ok := rt.toVirt[from]; ok {
			if rt.relayFor[from] {
				c.relayed.Add(1)
			} else {
				c.direct.Add(1)
			}
			return n, v, nil
		}
	}
	return n, addr, nil
}

func (c *pathConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if v, ok := addr.(virtualAddr); ok {
		r, ok := c.current(v)
		if !ok {
			return len(b), nil // attempt abandoned: drop, as a lossy path would
		}
		return c.udp.WriteTo(b, net.UDPAddrFromAddrPort(r.addr))
	}
	return c.udp.WriteTo(b, addr)
}

func (c *pathConn) Close() error                       { return c.udp.Close() }
func (c *pathConn) LocalAddr() net.Addr                { return c.udp.LocalAddr() }
func (c *pathConn) SetDeadline(t time.Time) error      { return c.udp.SetDeadline(t) }
func (c *pathConn) SetReadDeadline(t time.Time) error  { return c.udp.SetReadDeadline(t) }
func (c *pathConn) SetWriteDeadline(t time.Time) error { return c.udp.SetWriteDeadline(t) }

// SetReadBuffer and SetWriteBuffer let quic-go size the socket's buffers.
func (c *pathConn) SetReadBuffer(n int) error {
	if b, ok := c.udp.(interface{ SetReadBuffer(int) error }); ok {
		return b.SetReadBuffer(n)
	}
	return nil
}

func (c *pathConn) SetWriteBuffer(n int) error {
	if b, ok := c.udp.(interface{ SetWriteBuffer(int) error }); ok {
		return b.SetWriteBuffer(n)
	}
	return nil
}
