package rtc

import (
	"net"

	"github.com/pion/transport/v5"
)

// bufferedNet is a transport.Net whose UDP sockets ask the kernel for
// larger buffers.
//
// A data channel's SCTP sends bursts as large as its congestion window,
// up to the peer's 1 MiB receive window. The kernel's default UDP receive
// buffer (about 208 KiB on Linux) overflows under such a burst before
// pion's single read goroutine drains it; SCTP takes the drops for
// congestion, and a lost retransmission costs a 1 s retransmission
// timeout. Larger buffers absorb the bursts. The kernel caps the request
// (net.core.rmem_max and wmem_max); a refusal is not an error, and sockets
// that have no buffers (pion vnet's) are left alone.
type bufferedNet struct {
	transport.Net
	size int // bytes; not positive means leave the kernel's default
}

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		n.grow(c)
	}
	return c, err
}

func (n bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err == nil {
		n.grow(c)
	}
	return c, err
}

func (n bufferedNet) DialUDP(network string, laddr, raddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.DialUDP(network, laddr, raddr)
	if err == nil {
		n.grow(c)
	}
	return c, err
}

func (n bufferedNet) grow(c any) {
	if n.size <= 0 {
		return
	}
	if b, ok := c.(interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	}); ok {
		_ = b.SetReadBuffer(n.size)
		_ = b.SetWriteBuffer(n.size)
	}
}
