package mesh

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/quic-go/quic-go"
)

// socket is one UDP socket shared by QUIC and by the STUN messages that
// find and open paths: binding requests to the broker's STUN server (the
// server-reflexive address) and authenticated probes between the two peers
// (hole punching, as ICE connectivity checks do). Sharing matters: a NAT
// maps each local port on its own, so only probes sent from the QUIC
// socket open the mapping QUIC will use. quic-go hands every packet that is
// not QUIC to ReadNonQUICPacket, where run takes it.
type socket struct {
	// Immutable after newSocket.
	tr  *quic.Transport
	udp net.PacketConn
	log *slog.Logger

	// mu guards pending and probes. A prober takes it inside its own mu,
	// never the other way round.
	mu      sync.Mutex
	pending map[[stun.TransactionIDSize]byte]chan stunReply // binding requests in flight
	probes  map[string]*prober                              // local ufrag → the session probing with it
}

type stunReply struct {
	from netip.AddrPort
	msg  *stun.Message
}

// newSocket wraps a UDP socket. conn is what quic-go reads and writes: the
// socket itself on the agent, a pathConn around it on the technician.
func newSocket(udp net.PacketConn, conn net.PacketConn, log *slog.Logger) *socket {
	return &socket{
		tr:      &quic.Transport{Conn: conn, ConnectionIDLength: 8},
		udp:     udp,
		log:     log,
		pending: map[[stun.TransactionIDSize]byte]chan stunReply{},
		probes:  map[string]*prober{},
	}
}

// port is the socket's local port.
func (s *socket) port() int { return s.udp.LocalAddr().(*net.UDPAddr).Port }

// run reads non-QUIC packets until ctx ends or the transport closes.
func (s *socket) run(ctx context.Context) {
	buf := make([]byte, 1500)
	for {
		n, addr, err := s.tr.ReadNonQUICPacket(ctx, buf)
		if err != nil {
			return
		}
		if ua, ok := addr.(*net.UDPAddr); ok {
			s.handle(buf[:n], ua.AddrPort())
		}
	}
}

// handle takes one non-QUIC packet from anyone on the network: the answer
// to a binding request in flight, or a peer's probe. Anything else is
// dropped.
func (s *socket) handle(b []byte, from netip.AddrPort) {
	if !stun.IsMessage(b) {
		return
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		return
	}
	switch m.Type {
	case stun.BindingSuccess:
		s.mu.Lock()
		ch := s.pending[m.TransactionID]
		s.mu.Unlock()
		if ch != nil {
			select {
			case ch <- stunReply{from: from, msg: m}:
			default:
			}
		}
	case stun.BindingRequest:
		s.answerProbe(m, from)
	}
}

// writeTo sends raw bytes to a UDP address from the shared socket.
func (s *socket) writeTo(b []byte, to netip.AddrPort) error {
	_, err := s.tr.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

// transaction registers a transaction ID for replies.
func (s *socket) transaction(id [stun.TransactionIDSize]byte) (chan stunReply, func()) {
	ch := make(chan stunReply, 4)
	s.mu.Lock()
	s.pending[id] = ch
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}
}

// reflexive asks a STUN server which address it sees this socket as,
// retransmitting on RFC 5389's schedule, shortened (100 ms, doubling up to
// 1 s): 8 requests at most, fewer if ctx ends first.
func (s *socket) reflexive(ctx context.Context, server netip.AddrPort) (netip.AddrPort, error) {
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ch, done := s.transaction(m.TransactionID)
	defer done()
	wait := 100 * time.Millisecond
	for range 8 {
		if err := s.writeTo(m.Raw, server); err != nil {
			return netip.AddrPort{}, fmt.Errorf("stun %s: %w", server, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return netip.AddrPort{}, fmt.Errorf("stun %s: %w", server, context.Cause(ctx))
		case r := <-ch:
			t.Stop()
			var xa stun.XORMappedAddress
			if err := xa.GetFrom(r.msg); err != nil {
				return netip.AddrPort{}, fmt.Errorf("stun %s: no mapped address: %w", server, err)
			}
			ip, ok := netip.AddrFromSlice(xa.IP)
			if !ok {
				return netip.AddrPort{}, fmt.Errorf("stun %s: bad mapped address", server)
			}
			return netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port)), nil
		case <-t.C:
			wait = min(2*wait, time.Second)
		}
	}
	return netip.AddrPort{}, fmt.Errorf("stun %s: no answer", server)
}

// hostCandidates lists this host's interface addresses with the socket's
// port, loopback and link-local excluded: the direct path inside one LAN.
func (s *socket) hostCandidates(n transport.Net) []netip.AddrPort {
	local := s.udp.LocalAddr().(*net.UDPAddr).AddrPort()
	port := local.Port()
	if ip := local.Addr().Unmap(); !ip.IsUnspecified() {
		return []netip.AddrPort{netip.AddrPortFrom(ip, port)} // bound to one address
	}
	var out []netip.AddrPort
	ifs, err := n.Interfaces()
	if err != nil {
		return nil
	}
	var addrs []net.Addr
	for _, i := range ifs {
		if as, err := i.Addrs(); err == nil {
			addrs = append(addrs, as...)
		}
	}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, netip.AddrPortFrom(ip, port))
	}
	return out
}

// realNet is the host's network, for configs that leave Net nil.
func realNet() transport.Net {
	n, err := stdnet.NewNet()
	if err != nil {
		panic("mesh: host network: " + err.Error())
	}
	return n
}

// listenUDP opens a session socket on n: every address, IPv4 and IPv6
// where the stack allows, else IPv4.
func listenUDP(n transport.Net, addr string) (net.PacketConn, error) {
	if addr == "" {
		addr = ":0"
	}
	c, err := n.ListenPacket("udp", addr)
	if err != nil {
		host, port, serr := net.SplitHostPort(addr)
		if serr != nil || host != "" {
			return nil, err
		}
		c, err = n.ListenPacket("udp4", "0.0.0.0:"+port)
	}
	return c, err
}
