package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/transport/v5"
)

// The relayed path carries the session's QUIC packets, already encrypted
// end to end, as frames on a bridge stream to the broker: a 2-byte length
// and the packet. The broker splices the technician's stream to the
// agent's and never holds a key, so it sees ciphertext only. Because the
// bridge may run over TCP or WebSocket, the relay works where UDP is
// blocked.
//
// Each side runs a pump between its relay stream and a loopback UDP
// socket that talks to its own session socket. The session's QUIC
// connection thus sees the relay as one more UDP address, and moving to a
// direct path later is ordinary QUIC connection migration.

// MaxRelayFrame is the largest packet a relay frame carries.
const MaxRelayFrame = 1<<16 - 1

// WriteFrame writes one relay frame.
func WriteFrame(w io.Writer, p []byte) error {
	if len(p) > MaxRelayFrame {
		return fmt.Errorf("relay: packet of %d bytes", len(p))
	}
	buf := make([]byte, 2+len(p))
	binary.BigEndian.PutUint16(buf, uint16(len(p)))
	copy(buf[2:], p)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one relay frame into buf and returns the packet.
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf))
	if n > len(buf) {
		return nil, fmt.Errorf("relay: frame of %d bytes", n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// pump joins a relay stream to a session socket through a loopback UDP
// socket.
type pump struct {
	stream io.ReadWriteCloser
	udp    net.PacketConn
	target netip.AddrPort // the session socket on loopback

	closeOnce sync.Once
	done      chan struct{}

	in atomic.Uint64 // packets from the relay to the session socket
}

// newPump starts a pump between stream and the session socket listening on
// port (bound to every address, so loopback reaches it).
func newPump(n transport.Net, stream io.ReadWriteCloser, port int) (*pump, error) {
	udp, err := n.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay: loopback socket: %w", err)
	}
	p := &pump{stream: stream, udp: udp, done: make(chan struct{}),
		target: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))}
	return p, nil
}

// addr is the loopback address the session socket sees relayed packets from.
func (p *pump) addr() netip.AddrPort {
	return p.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// run moves packets both ways until either side fails or close is called.
func (p *pump) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // stream → session socket
		defer wg.Done()
		defer p.close()
		buf := make([]byte, MaxRelayFrame)
		dst := net.UDPAddrFromAddrPort(p.target)
		for {
			pkt, err := ReadFrame(p.stream, buf)
			if err != nil {
				return
			}
			if _, err := p.udp.WriteTo(pkt, dst); err != nil {
				return
			}
			p.in.Add(1)
		}
	}()
	go func() { // session socket → stream
		defer wg.Done()
		defer p.close()
		buf := make([]byte, 2+MaxRelayFrame)
		for {
			n, from, err := p.udp.ReadFrom(buf[2:])
			if err != nil {
				return
			}
			if ua, ok := from.(*net.UDPAddr); !ok || ua.Port != int(p.target.Port()) {
				continue // only the session socket may use the relay
			}
			binary.BigEndian.PutUint16(buf, uint16(n))
			if _, err := p.stream.Write(buf[:2+n]); err != nil {
				return
			}
		}
	}()
	wg.Wait()
}

func (p *pump) close() {
	p.closeOnce.Do(func() {
		close(p.done)
		p.stream.Close()
		p.udp.Close()
	})
}

// Relay opens a relay stream for a session: the caller's bridge stream to
// the broker, after the broker said both sides are joined.
type Relay func(ctx context.Context, session string) (io.ReadWriteCloser, error)

var errNoRelay = errors.New("no relay offered")
