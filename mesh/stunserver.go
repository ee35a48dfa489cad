package mesh

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v4"
)

// Observer is the broker's STUN responder. It answers binding requests
// with the address it saw (the server-reflexive candidate) and remembers
// that address for requests whose USERNAME carries a session token: the
// technician sends one at the moment it asks for a session, so the broker
// can put the technician's server-reflexive address into the offer itself,
// and the technician saves a STUN round trip before signalling.
type Observer struct {
	limit int // tokens remembered at most; immutable

	// mu guards seen and wake. wake is closed and replaced whenever a
	// token is seen, to wake every Wait.
	mu   sync.Mutex
	seen map[string]observation
	wake chan struct{}
}

type observation struct {
	addr netip.AddrPort
	at   time.Time
}

// NewObserver returns an Observer that remembers up to 4096 tokens. When
// it is full, a new token makes it forget those older than 30 s, and
// others, in no particular order, until there is room.
func NewObserver() *Observer {
	return &Observer{seen: map[string]observation{}, wake: make(chan struct{}), limit: 4096}
}

// Wait returns the address a token's binding request came from, waiting
// until ctx ends for it to arrive.
func (o *Observer) Wait(ctx context.Context, token string) (netip.AddrPort, bool) {
	for {
		o.mu.Lock()
		ob, ok := o.seen[token]
		wake := o.wake
		o.mu.Unlock()
		if ok {
			return ob.addr, true
		}
		select {
		case <-ctx.Done():
			return netip.AddrPort{}, false
		case <-wake:
		}
	}
}

func (o *Observer) record(token string, a netip.AddrPort) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if len(o.seen) >= o.limit {
		for k, v := range o.seen {
			if now.Sub(v.at) > 30*time.Second || len(o.seen) >= o.limit {
				delete(o.seen, k)
			}
		}
	}
	if _, ok := o.seen[token]; ok {
		return // first write wins: a later packet may be spoofed
	}
	o.seen[token] = observation{addr: a, at: now}
	close(o.wake)
	o.wake = make(chan struct{})
}

// answer handles one packet if it is a binding request, and reports
// whether it did.
func (o *Observer) answer(pc net.PacketConn, b []byte, from net.Addr) bool {
	if !stun.IsMessage(b) {
		return false
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil || m.Type != stun.BindingRequest {
		return false
	}
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return true
	}
	var u stun.Username
	if u.GetFrom(m) == nil {
		if tok, ok := strings.CutPrefix(u.String(), TokenPrefix); ok && len(tok) <= 64 {
			ap := ua.AddrPort()
			o.record(tok, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ua.IP, Port: ua.Port}, stun.Fingerprint)
	if err == nil {
		pc.WriteTo(resp.Raw, from)
	}
	return true
}

// Serve answers binding requests on pc until pc is closed.
func (o *Observer) Serve(pc net.PacketConn) error {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		o.answer(pc, buf[:n], from)
	}
}

// Wrap returns pc with binding requests answered here and every other
// packet (TURN's) passed on to the reader, so STUN and a TURN server share
// one port.
func (o *Observer) Wrap(pc net.PacketConn) net.PacketConn { return &observedConn{PacketConn: pc, o: o} }

type observedConn struct {
	net.PacketConn
	o *Observer
}

func (c *observedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.o.answer(c.PacketConn, b[:n], from) {
			return n, from, err
		}
	}
}
