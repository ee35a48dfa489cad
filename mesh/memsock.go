package mesh

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// When an agent cannot open a UDP socket at all (a host policy that
// forbids UDP, Wine 8's sockets), its live sessions can still run over the
// broker's relay: the relay carries the session's QUIC packets on the
// bridge stream, which is TCP or WebSocket then. The session socket and the
// relay pumps normally meet on loopback UDP; here they meet in memory, on a
// hub that stands in for 127.0.0.1. Direct paths are impossible, so the
// agent offers no candidates.

// errNoUDP is what a write to a real address gets from a memory socket.
var errNoUDP = errors.New("mesh: no UDP on this host: only relayed sessions")

// memHub is the in-memory loopback: sockets by port.
type memHub struct {
	mu    sync.Mutex // mu guards next and conns
	next  uint16
	conns map[uint16]*memConn
}

func newMemHub() *memHub { return &memHub{next: 1, conns: map[uint16]*memConn{}} }

// listen opens a socket on the next free port of the hub.
func (h *memHub) listen() (*memConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for range 1 << 16 {
		port := h.next
		h.next++
		if h.next == 0 {
			h.next = 1
		}
		if _, used := h.conns[port]; port != 0 && !used {
			c := &memConn{hub: h, port: port, in: make(chan memPacket, memQueue), closed: make(chan struct{}),
				wake: make(chan struct{})}
			h.conns[port] = c
			return c, nil
		}
	}
	return nil, errors.New("mesh: memory loopback: no free port")
}

func (h *memHub) lookup(port uint16) *memConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[port]
}

func (h *memHub) remove(port uint16) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, port)
}

// memQueue is how many packets a memory socket holds unread; more are
// dropped, as a full UDP receive buffer drops them.
const memQueue = 1024

type memPacket struct {
	b    []byte
	from uint16
}

// memLoopback is the address every memory socket has.
var memLoopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// memConn is a socket on a memHub: a net.PacketConn whose peers are the
// hub's other sockets.
type memConn struct {
	hub  *memHub
	port uint16
	in   chan memPacket

	closeOnce sync.Once
	closed    chan struct{}

	mu       sync.Mutex    // mu guards deadline and wake
	deadline time.Time     // read deadline; zero: none
	wake     chan struct{} // closed and replaced when the deadline changes
}

var _ net.PacketConn = (*memConn)(nil)

func (c *memConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		select {
		case <-c.closed:
			return 0, nil, net.ErrClosed
		default:
		}
		c.mu.Lock()
		deadline, wake := c.deadline, c.wake
		c.mu.Unlock()
		var expired <-chan time.Time
		var timer *time.Timer
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(d)
			expired = timer.C
		}
		n, from, again, err := c.readOnce(p, expired, wake)
		if timer != nil {
			timer.Stop()
		}
		if !again {
			return n, from, err
		}
	}
}

// readOnce waits for a packet, the close, the deadline or a change of the
// deadline (again: wait anew).
func (c *memConn) readOnce(p []byte, expired <-chan time.Time, wake <-chan struct{}) (int, net.Addr, bool, error) {
	select {
	case pkt := <-c.in:
		n := copy(p, pkt.b)
		return n, net.UDPAddrFromAddrPort(netip.AddrPortFrom(memLoopback, pkt.from)), false, nil
	case <-c.closed:
		return 0, nil, false, net.ErrClosed
	case <-expired:
		return 0, nil, false, os.ErrDeadlineExceeded
	case <-wake:
		return 0, nil, true, nil
	}
}

// WriteTo delivers p to the hub's socket at addr's port, or drops it when
// there is none or it is full, as UDP would. Real addresses are refused.
func (c *memConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errNoUDP
	}
	ap := ua.AddrPort()
	if ap.Addr().Unmap() != memLoopback {
		return 0, errNoUDP
	}
	if dst := c.hub.lookup(ap.Port()); dst != nil {
		select {
		case dst.in <- memPacket{b: append([]byte(nil), p...), from: c.port}:
		default:
		}
	}
	return len(p), nil
}

func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		c.hub.remove(c.port)
		close(c.closed)
	})
	return nil
}

func (c *memConn) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(memLoopback, c.port))
}

func (c *memConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	close(c.wake)
	c.wake = make(chan struct{})
	return nil
}

// SetWriteDeadline does nothing: writes never block.
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer and SetWriteBuffer accept any size: a memory socket's
// queue is fixed (memQueue). quic-go asks for a larger buffer on every
// socket and logs a warning to the standard logger when it cannot.
func (c *memConn) SetReadBuffer(int) error  { return nil }
func (c *memConn) SetWriteBuffer(int) error { return nil }

// relayOnlyAllowed reports whether a session socket that could not be
// opened on addr may be replaced by the in-memory loopback: only when no
// port was asked for. A port given on purpose (a firewall admits it) that
// cannot be had is an error to report, not a reason to go relay-only.
func relayOnlyAllowed(addr string) bool {
	if addr == "" {
		return true
	}
	_, port, err := net.SplitHostPort(addr)
	return err == nil && (port == "" || port == "0")
}
