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

// prober punches one session's holes. Each side sends STUN binding
// requests from its QUIC socket to every candidate of the other side,
// authenticated as ICE does (USERNAME "their-ufrag:our-ufrag",
// MESSAGE-INTEGRITY keyed with their password), and answers the other
// side's requests. Sending opens this side's NAT towards the other; an
// authenticated answer proves the path works both ways. A request from an
// address we did not know (the other side is behind a NAT that picks a new
// port per destination) adds that address as a target: ICE's
// peer-reflexive candidate.
type prober struct {
	// Immutable after newProber.
	s                     *socket
	localUfrag, localPwd  string
	remoteUfrag, remotePw string
	added                 chan struct{} // wakes the send loop for a new target

	// mu guards closed, targets and txs. It is taken before s.mu when
	// both are needed.
	mu      sync.Mutex
	closed  bool // no more sends or registrations after close
	targets []netip.AddrPort
	txs     map[[stun.TransactionIDSize]byte]netip.AddrPort // probes in flight → their target

	// once closes found, after addr is set, when the first probe is
	// answered; addr is read only after found is closed.
	once  sync.Once
	found chan struct{}
	addr  netip.AddrPort
}

// newProber registers a prober on s. Call close when done.
func (s *socket) newProber(localUfrag, localPwd, remoteUfrag, remotePwd string, targets []netip.AddrPort) *prober {
	p := &prober{s: s, localUfrag: localUfrag, localPwd: localPwd, remoteUfrag: remoteUfrag, remotePw: remotePwd,
		txs: map[[stun.TransactionIDSize]byte]netip.AddrPort{}, added: make(chan struct{}, 1), found: make(chan struct{})}
	for _, t := range targets {
		p.addTarget(t)
	}
	s.mu.Lock()
	s.probes[localUfrag] = p
	s.mu.Unlock()
	return p
}

func (p *prober) close() {
	p.mu.Lock()
	p.closed = true
	ids := make([][stun.TransactionIDSize]byte, 0, len(p.txs))
	for id := range p.txs {
		ids = append(ids, id)
	}
	p.txs = map[[stun.TransactionIDSize]byte]netip.AddrPort{}
	p.mu.Unlock()
	p.s.mu.Lock()
	if p.s.probes[p.localUfrag] == p {
		delete(p.s.probes, p.localUfrag)
	}
	for _, id := range ids {
		delete(p.s.pending, id)
	}
	p.s.mu.Unlock()
}

// addTarget adds a remote address to probe; it reports whether it is new.
func (p *prober) addTarget(a netip.AddrPort) bool {
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.targets {
		if t == a {
			return false
		}
	}
	if len(p.targets) >= 64 {
		return false
	}
	p.targets = append(p.targets, a)
	select {
	case p.added <- struct{}{}:
	default:
	}
	return true
}

// Found returns the first address whose probe was answered, once one is.
func (p *prober) Found() <-chan struct{} { return p.found }

// Addr is the working remote address; valid after Found is closed.
func (p *prober) Addr() netip.AddrPort { <-p.found; return p.addr }

// run sends probes on a schedule until ctx ends: every 20 ms for the first
// 200 ms (so the first probes meet the other side's), then every 100 ms
// until 3 s, then every 500 ms. After success it goes on answering (the
// socket does) but stops sending.
func (p *prober) run(ctx context.Context, delay time.Duration) {
	replies := make(chan stunReply, 16)
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	start := time.Now()
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.found:
			return
		case <-p.added:
			p.sendAll(replies)
		case <-tick.C:
			p.sendAll(replies)
			el := time.Since(start)
			switch {
			case el < 200*time.Millisecond:
				tick.Reset(20 * time.Millisecond)
			case el < 3*time.Second:
				tick.Reset(100 * time.Millisecond)
			default:
				tick.Reset(500 * time.Millisecond)
			}
		case r := <-replies:
			p.checkReply(r)
		}
	}
}

func (p *prober) sendAll(replies chan stunReply) {
	p.mu.Lock()
	targets := append([]netip.AddrPort(nil), p.targets...)
	p.mu.Unlock()
	for _, t := range targets {
		m, err := stun.Build(stun.TransactionID, stun.BindingRequest,
			stun.NewUsername(p.remoteUfrag+":"+p.localUfrag),
			stun.NewShortTermIntegrity(p.remotePw), stun.Fingerprint)
		if err != nil {
			continue
		}
		// Registered under both locks in close's order, so a closed prober
		// never leaves a transaction behind.
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		p.txs[m.TransactionID] = t
		p.s.mu.Lock()
		p.s.pending[m.TransactionID] = replies
		p.s.mu.Unlock()
		p.mu.Unlock()
		p.s.writeTo(m.Raw, t) // a send error (no route to a LAN address) is expected
	}
}

// checkReply accepts an answer whose integrity the other side's password
// proves.
func (p *prober) checkReply(r stunReply) {
	if err := stun.NewShortTermIntegrity(p.remotePw).Check(r.msg); err != nil {
		p.s.log.Debug("probe answer with bad integrity", "from", r.from)
		return
	}
	p.once.Do(func() {
		p.addr = r.from
		close(p.found)
	})
}

// answerProbe answers an authenticated probe and learns its source.
func (s *socket) answerProbe(m *stun.Message, from netip.AddrPort) {
	var u stun.Username
	if err := u.GetFrom(m); err != nil {
		return
	}
	local, _, ok := strings.Cut(u.String(), ":")
	if !ok {
		return
	}
	s.mu.Lock()
	p := s.probes[local]
	s.mu.Unlock()
	if p == nil {
		s.log.Debug("probe for an unknown session", "from", from)
		return
	}
	if err := stun.NewShortTermIntegrity(p.localPwd).Check(m); err != nil {
		s.log.Info("refused a probe with bad integrity", "from", from)
		return
	}
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: net.IP(from.Addr().AsSlice()), Port: int(from.Port())},
		stun.NewShortTermIntegrity(p.localPwd), stun.Fingerprint)
	if err != nil {
		return
	}
	s.writeTo(resp.Raw, from)
	p.addTarget(from) // a triggered check back, from this side
}
