package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/quic-go/quic-go"

	"github.com/readymesh/readymesh/peer/wire"
)

// attempt is one way of reaching the agent.
type attempt struct {
	addr    netip.AddrPort // a candidate, or the relay's virtual address
	relayed bool
}

// won is how an attempt ended: a connection, or why not.
type won struct {
	a    attempt
	conn *quic.Conn
	pump *pump // the relay's, for the relayed attempt
	err  error
}

func (w *won) closePump() {
	if w.pump != nil {
		w.pump.close()
	}
}

func describe(a attempt) string {
	if a.relayed {
		return "relay"
	}
	return "direct " + a.addr.String()
}

// answerTargets parses the agent's candidates, IPv4-mapped addresses as
// plain IPv4.
func answerTargets(answer wire.PeerParams) []netip.AddrPort {
	var targets []netip.AddrPort
	for _, c := range answer.Candidates {
		if ap, err := netip.ParseAddrPort(c.Addr); err == nil {
			targets = append(targets, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
	return targets
}

// startProbing punches towards the agent's candidates for PunchTimeout,
// unless the session is relay-only or the agent sent no probe credentials.
// The probes open our NAT for the direct attempts, and a relayed session
// moves to the first address they reach.
func (d *dialer) startProbing(local, answer wire.PeerParams, targets []netip.AddrPort) {
	if d.cfg.Transport == wire.TransportRelay || answer.Ufrag == "" || d.hub != nil {
		return
	}
	pr := d.sock.newProber(local.Ufrag, local.Pwd, answer.Ufrag, answer.Pwd, targets)
	d.pr = pr
	d.s.cleanup = append(d.s.cleanup, pr.close)
	pctx, pcancel := context.WithTimeout(d.sctx, d.cfg.PunchTimeout)
	d.s.cleanup = append(d.s.cleanup, pcancel)
	d.s.wg.Go(func() { pr.run(pctx, 0) })
}

// race tries every way of reaching the agent at once, for PunchTimeout at
// most: direct QUIC to each of its candidates and, where offered, the
// relay. The first connection wins.
func (d *dialer) race(ctx context.Context, res *wire.SessionResult, targets []netip.AddrPort, tlsConf *tls.Config) (*won, error) {
	// Each attempt's goroutine sends one result into results, which has
	// room for all of them, and ends with rctx, which firstWon cancels as
	// soon as one attempt wins.
	rctx, rcancel := context.WithTimeout(ctx, d.cfg.PunchTimeout)
	defer rcancel()
	results := make(chan won, len(targets)+1)
	n := 0
	if d.cfg.Transport != wire.TransportRelay {
		for _, t := range targets {
			n++
			go func() { results <- d.dialDirect(rctx, t, tlsConf) }()
		}
	}
	v := virtualAddr(1)
	if d.cfg.Transport != wire.TransportQUIC && res.Relay && d.cfg.Relay != nil {
		n++
		go func() { results <- d.dialRelay(rctx, v, tlsConf) }()
	}
	if n == 0 {
		return nil, fmt.Errorf("mesh: no path to try: the agent gave no candidates and no relay is offered")
	}
	w, errs := firstWon(results, n, rcancel)
	if w == nil {
		return nil, fmt.Errorf("mesh: no path to %s: %w", d.s.Grant.Machine, errors.Join(errs...))
	}
	if !w.a.relayed {
		d.pc.dropRoute(v)
	}
	return w, nil
}

// dialDirect is the direct attempt to one of the agent's candidates.
func (d *dialer) dialDirect(ctx context.Context, t netip.AddrPort, tlsConf *tls.Config) won {
	a := attempt{addr: t}
	conn, err := d.sock.tr.Dial(ctx, net.UDPAddrFromAddrPort(a.addr), tlsConf, quicConfig())
	return won{a: a, conn: conn, err: err}
}

// dialRelay is the relayed attempt: it joins the relay, starts its pump,
// routes the virtual address v to the pump and dials v.
func (d *dialer) dialRelay(ctx context.Context, v netip.AddrPort, tlsConf *tls.Config) won {
	a := attempt{addr: v, relayed: true}
	stream, err := d.cfg.Relay(ctx, d.s.ID)
	if err != nil {
		return won{a: a, err: fmt.Errorf("relay: %w", err)}
	}
	listen := d.cfg.Net.ListenPacket
	if d.hub != nil {
		listen = func(string, string) (net.PacketConn, error) { return d.hub.listen() }
	}
	p, err := newPump(listen, stream, d.sock.port())
	if err != nil {
		stream.Close()
		return won{a: a, err: err}
	}
	go p.run()
	d.pc.setRoute(v, p.addr())
	conn, err := d.sock.tr.Dial(ctx, net.UDPAddrFromAddrPort(v), tlsConf, quicConfig())
	return won{a: a, conn: conn, pump: p, err: err}
}

// firstWon takes the n attempts' results until one has a connection, and
// cancels the rest. The losers are closed in the background, so a slow
// one (a relay the agent never joins) does not hold up the winner. With
// no winner it returns every attempt's error.
func firstWon(results <-chan won, n int, cancel context.CancelFunc) (*won, []error) {
	var errs []error
	for i := range n {
		r := <-results
		if r.err != nil {
			r.closePump()
			errs = append(errs, fmt.Errorf("%s: %w", describe(r.a), r.err))
			continue
		}
		cancel()
		go closeLosers(results, n-i-1)
		return &r, nil
	}
	return nil, errs
}

// closeLosers closes the connections and relay pumps of the left attempts
// still to report.
func closeLosers(results <-chan won, left int) {
	for range left {
		r := <-results
		if r.conn != nil {
			r.conn.CloseWithError(0, "another path won")
		}
		r.closePump()
	}
}
