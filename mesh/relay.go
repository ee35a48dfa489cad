package mesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
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

// newPump makes a pump between stream and the session socket listening on
// port (bound to every address, so loopback reaches it). run starts it.
func newPump(listen func(network, addr string) (net.PacketConn, error), stream io.ReadWriteCloser, port int) (*pump, error) {
	udp, err := listen("udp4", "127.0.0.1:0")
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
// Both directions batch: up to pumpBatch packets read from the socket at
// once leave in one stream write, and frames already buffered from the
// stream leave in one sendmmsg, so a bulk copy costs a few system calls per
// batch rather than several per packet.
func (p *pump) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer p.close()
		p.streamToSocket()
	}()
	go func() {
		defer wg.Done()
		defer p.close()
		p.socketToStream()
	}()
	wg.Wait()
}

const pumpBatch = 32

func (p *pump) streamToSocket() {
	br := bufio.NewReaderSize(p.stream, 256<<10)
	dst := net.UDPAddrFromAddrPort(p.target)
	var batch *ipv4.PacketConn
	if u, ok := p.udp.(*net.UDPConn); ok {
		batch = ipv4.NewPacketConn(u)
	}
	msgs := make([]ipv4.Message, pumpBatch)
	bufs := make([][]byte, pumpBatch)
	for i := range bufs {
		bufs[i] = make([]byte, MaxRelayFrame)
	}
	for {
		n := 0
		for n < pumpBatch {
			if n > 0 && !frameBuffered(br) {
				break // send what we have rather than wait
			}
			pkt, err := ReadFrame(br, bufs[n])
			if err != nil {
				p.flush(batch, msgs[:n], bufs, dst)
				return
			}
			msgs[n] = ipv4.Message{Buffers: [][]byte{pkt}, Addr: dst}
			n++
		}
		if err := p.flush(batch, msgs[:n], bufs, dst); err != nil {
			return
		}
		p.in.Add(uint64(n))
	}
}

// frameBuffered reports whether a whole frame is already in br.
func frameBuffered(br *bufio.Reader) bool {
	if br.Buffered() < 2 {
		return false
	}
	h, _ := br.Peek(2)
	return br.Buffered() >= 2+int(binary.BigEndian.Uint16(h))
}

func (p *pump) flush(batch *ipv4.PacketConn, msgs []ipv4.Message, _ [][]byte, dst net.Addr) error {
	if len(msgs) == 0 {
		return nil
	}
	if batch != nil {
		for len(msgs) > 0 {
			n, err := batch.WriteBatch(msgs, 0)
			if err != nil {
				return err
			}
			msgs = msgs[n:]
		}
		return nil
	}
	for _, m := range msgs {
		if _, err := p.udp.WriteTo(m.Buffers[0], dst); err != nil {
			return err
		}
	}
	return nil
}

func (p *pump) socketToStream() {
	out := make([]byte, 0, pumpBatch*(2+1500))
	if u, ok := p.udp.(*net.UDPConn); ok {
		batch := ipv4.NewPacketConn(u)
		msgs := make([]ipv4.Message, pumpBatch)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, MaxRelayFrame)}
		}
		for {
			n, err := batch.ReadBatch(msgs, 0)
			if err != nil {
				return
			}
			out = out[:0]
			for _, m := range msgs[:n] {
				if ua, ok := m.Addr.(*net.UDPAddr); !ok || ua.Port != int(p.target.Port()) {
					continue // only the session socket may use the relay
				}
				out = binary.BigEndian.AppendUint16(out, uint16(m.N))
				out = append(out, m.Buffers[0][:m.N]...)
			}
			if _, err := p.stream.Write(out); err != nil {
				return
			}
		}
	}
	buf := make([]byte, 2+MaxRelayFrame)
	for {
		n, from, err := p.udp.ReadFrom(buf[2:])
		if err != nil {
			return
		}
		if ua, ok := from.(*net.UDPAddr); !ok || ua.Port != int(p.target.Port()) {
			continue
		}
		binary.BigEndian.PutUint16(buf, uint16(n))
		if _, err := p.stream.Write(buf[:2+n]); err != nil {
			return
		}
	}
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
