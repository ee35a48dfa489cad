package turnserver

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/pion/transport/v5"
	"github.com/pion/turn/v5"
)

// errTCPRelay refuses RFC 6062 TCP allocations: WebRTC relays over UDP, and
// TCP relays would let a credential holder open outbound TCP connections
// from the broker.
var errTCPRelay = errors.New("TCP relay allocations are not offered")

// relayAllocator opens the relay socket of each allocation on the
// configured network and address and wraps it so the Server can count its
// bytes and know when it is closed.
type relayAllocator struct {
	net     transport.Net
	bindIP  net.IP // address relay sockets bind to
	relayIP net.IP // address advertised to clients
	srv     *Server
}

var _ turn.RelayAddressGenerator = (*relayAllocator)(nil)

func (r *relayAllocator) Validate() error {
	if r.net == nil || r.bindIP == nil || r.relayIP == nil {
		return fmt.Errorf("%w: relay allocator not initialised", ErrConfig)
	}
	return nil
}

func (r *relayAllocator) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if want4 := c.Network == "udp4"; want4 != (r.relayIP.To4() != nil) {
		return nil, nil, fmt.Errorf("allocate relay: %s requested, relay address is %v", c.Network, r.relayIP)
	}
	addr := net.JoinHostPort(r.bindIP.String(), strconv.Itoa(c.RequestedPort))
	pc, err := r.net.ListenPacket(c.Network, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("allocate relay on %s: %w", addr, err)
	}
	local, ok := pc.LocalAddr().(*net.UDPAddr)
	if !ok {
		_ = pc.Close()
		return nil, nil, fmt.Errorf("allocate relay: socket has a %T address", pc.LocalAddr())
	}
	r.srv.relays.Add(1)
	conn := &relayConn{PacketConn: pc, bytes: &r.srv.relayed, closed: r.srv.relays.Done}
	return conn, &net.UDPAddr{IP: r.relayIP, Port: local.Port}, nil
}

func (r *relayAllocator) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errTCPRelay
}

func (r *relayAllocator) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errTCPRelay
}

// relayConn is a relay socket that counts the bytes it carries and reports
// its first Close.
type relayConn struct {
	net.PacketConn
	bytes  *atomic.Uint64
	closed func()
	once   sync.Once
}

func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	c.bytes.Add(uint64(max(n, 0)))
	return n, addr, err
}

func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(p, addr)
	c.bytes.Add(uint64(max(n, 0)))
	return n, err
}

func (c *relayConn) Close() error {
	err := c.PacketConn.Close()
	c.once.Do(c.closed)
	return err
}
