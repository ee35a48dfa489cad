package mesh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/mesh/rtc"
	"github.com/readymesh/readymesh/peer/wire"
)

// Offer handles a session offer that broker carried: it checks the grant,
// starts probing and the relay, and returns the agent's parameters.
func (l *Listener) Offer(ctx context.Context, broker peer.ID, brokerName string, o *wire.Offer, stunServer netip.AddrPort) (*wire.PeerParams, error) {
	g, tech, err := l.checkOffer(broker, o)
	if err != nil {
		return nil, err
	}
	if o.Transport == wire.TransportWebRTC {
		if err := l.askConsent(ctx, g); err != nil {
			return nil, err
		}
		return l.answerWebRTC(ctx, g, o, stunServer, brokerName)
	}
	ps, err := l.reserve(g, tech, broker, brokerName)
	if err != nil {
		return nil, err
	}
	if err := l.awaitConsent(ctx, ps); err != nil {
		return nil, err
	}
	params := &wire.PeerParams{}
	if o.Transport != wire.TransportRelay {
		params.Candidates = l.candidates(ctx, stunServer)
		params.Ufrag, params.Pwd = randHex(8), randHex(16)
		l.startProbing(ps, o, params)
	}
	if o.Relay && o.Transport != wire.TransportQUIC && l.cfg.Relay != nil {
		l.wg.Go(func() { l.joinRelay(ps) })
	}
	l.wg.Go(func() { l.forgetWhenLapsed(ps) })
	l.log.Info("session offered", "session", g.Session, "technician", g.TechnicianName, "mode", g.Mode,
		"transport", o.Transport, "candidates", len(params.Candidates))
	return params, nil
}

// checkOffer checks an offer before the agent does anything for it: the
// grant is valid for this machine, carried by the broker that issued it,
// for the technician whose parameters these are, and not used before. It
// returns the grant and the technician.
func (l *Listener) checkOffer(broker peer.ID, o *wire.Offer) (wire.Grant, peer.ID, error) {
	g, err := VerifyGrant(o.Grant, l.cfg.Key.ID, l.cfg.Trusted, l.cfg.Now())
	if err != nil {
		return g, "", err
	}
	if g.Issuer != broker.String() {
		// Grants travel only from their issuer; another broker carrying
		// one is replaying it.
		return g, "", fmt.Errorf("%w: issued by %s, carried by %s", ErrGrantIssuer, g.Issuer, broker)
	}
	tech, err := peer.Decode(g.Technician)
	if err != nil {
		return g, "", fmt.Errorf("%w: technician: %v", ErrGrantForged, err)
	}
	if err := checkTechnicianParams(g, tech, o); err != nil {
		return g, "", err
	}
	if err := l.checkRevoked(tech, g.IssuedAt); err != nil {
		return g, "", err
	}
	if l.isUsed(g.Session) {
		return g, "", fmt.Errorf("%w: session %s", ErrGrantUsed, g.Session)
	}
	return g, tech, nil
}

// checkTechnicianParams checks that the offer's parameters are the granted
// technician's: signed by the technician's key, or, for a web-console
// grant, a WebRTC offer declaring exactly the browser fingerprints the
// broker bound into the grant.
func checkTechnicianParams(g wire.Grant, tech peer.ID, o *wire.Offer) error {
	if len(g.Fingerprints) == 0 {
		if err := VerifyParams(tech, o.Params, o.ParamsSig); err != nil {
			return fmt.Errorf("technician parameters: %w", err)
		}
		return nil
	}
	if o.Transport != wire.TransportWebRTC {
		return fmt.Errorf("%w: a web-console grant is for WebRTC, not %s", ErrGrantPeer, o.Transport)
	}
	fps, err := rtc.Fingerprints(o.Params.SDP)
	if err != nil {
		return fmt.Errorf("technician parameters: %w", err)
	}
	if !sameSet(fps, g.Fingerprints) {
		return fmt.Errorf("%w: the offer's DTLS fingerprints are not the ones the grant names", ErrGrantPeer)
	}
	return nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// askConsent asks the person at the machine about g, if the agent asks.
func (l *Listener) askConsent(ctx context.Context, g wire.Grant) error {
	if l.cfg.Consent == nil {
		return nil
	}
	return l.cfg.Consent(ctx, g)
}

// reserve records the offer as pending now, so a second offer of the same
// grant is refused even while this one is still being answered. The
// offer's context ends PunchTimeout after the grant expires.
func (l *Listener) reserve(g wire.Grant, tech, broker peer.ID, brokerName string) (*pendingSession, error) {
	ctx, cancel := context.WithDeadline(l.ctx, g.Expires.Add(l.cfg.PunchTimeout))
	ps := &pendingSession{grant: g, tech: tech, ctx: ctx, cancel: cancel, relayBy: brokerName, broker: broker}
	l.mu.Lock()
	err := l.reserveLocked(ps)
	l.mu.Unlock()
	if err != nil {
		cancel()
		return nil, err
	}
	return ps, nil
}

// reserveLocked adds ps to the pending offers unless its session was
// offered before or the agent has MaxSessions already. l.mu must be held.
func (l *Listener) reserveLocked(ps *pendingSession) error {
	id := ps.grant.Session
	if _, dup := l.pending[id]; dup {
		return fmt.Errorf("%w: session %s was offered before", ErrGrantUsed, id)
	}
	if len(l.pending)+len(l.active) >= MaxSessions {
		return fmt.Errorf("%w: %d sessions open or offered on this agent", ErrTooManySessions, MaxSessions)
	}
	l.pending[id] = ps
	return nil
}

// awaitConsent asks the person at the machine about a reserved offer. A
// refusal withdraws the offer. A grant that waited more than a second for
// the approval gets its full lifetime again from then.
func (l *Listener) awaitConsent(ctx context.Context, ps *pendingSession) error {
	if l.cfg.Consent == nil {
		return nil
	}
	asked := l.cfg.Now()
	if err := l.cfg.Consent(ctx, ps.grant); err != nil {
		l.mu.Lock()
		delete(l.pending, ps.grant.Session)
		l.mu.Unlock()
		ps.cancel()
		return err
	}
	if waited := l.cfg.Now().Sub(asked); waited > time.Second {
		l.restartClock(ps)
	}
	return nil
}

// restartClock restarts the grant's clock at the approval: a new expiry
// one lifetime from now, and a new context for the offer to match.
func (l *Listener) restartClock(ps *pendingSession) {
	ttl := ps.grant.Expires.Sub(ps.grant.IssuedAt)
	exp := l.cfg.Now().Add(ttl)
	ps.cancel()
	ctx, cancel := context.WithDeadline(l.ctx, exp.Add(l.cfg.PunchTimeout))
	l.mu.Lock()
	ps.grant.Expires, ps.ctx, ps.cancel = exp, ctx, cancel
	l.mu.Unlock()
}

// candidates lists where the technician may reach this agent: the
// server-reflexive address stunServer sees, then the host addresses, at
// most wire.MaxCandidates.
func (l *Listener) candidates(ctx context.Context, stunServer netip.AddrPort) []wire.Candidate {
	if l.hub != nil {
		return nil // no UDP here: the relay is the only path
	}
	var out []wire.Candidate
	if srflx := l.reflexiveFor(ctx, stunServer); srflx.IsValid() {
		out = append(out, wire.Candidate{Kind: wire.CandSrflx, Addr: srflx.String()})
	}
	for _, a := range l.sock.hostCandidates(l.cfg.Net) {
		if len(out) < wire.MaxCandidates {
			out = append(out, wire.Candidate{Kind: wire.CandHost, Addr: a.String()})
		}
	}
	return out
}

// reflexiveFor returns the server-reflexive address stunServer sees: the
// one Reflexive last learned, if it is from the same server and under
// 20 s old, else a fresh one, asked for 2 s at most. Invalid means none.
func (l *Listener) reflexiveFor(ctx context.Context, stunServer netip.AddrPort) netip.AddrPort {
	if !stunServer.IsValid() {
		return netip.AddrPort{}
	}
	l.mu.Lock()
	fresh := l.srflx.IsValid() && l.srflxSrv == stunServer && l.cfg.Now().Sub(l.srflxAt) < 20*time.Second
	srflx := l.srflx
	l.mu.Unlock()
	if fresh {
		return srflx
	}
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	srflx, err := l.Reflexive(sctx, stunServer)
	if err != nil {
		l.log.Info("no server-reflexive address", "err", err)
	}
	return srflx
}

// startProbing punches towards the technician: its candidates and the
// addresses the broker observed for it. The first probes leave after the
// delay the broker asked for, so they meet the technician's; probing lasts
// PunchTimeout after that. A technician that sent no probe credentials is
// not probed.
func (l *Listener) startProbing(ps *pendingSession, o *wire.Offer, params *wire.PeerParams) {
	if o.Params.Ufrag == "" {
		return
	}
	pr := l.sock.newProber(params.Ufrag, params.Pwd, o.Params.Ufrag, o.Params.Pwd, offerTargets(o))
	l.mu.Lock() // the offer is already visible to claims
	ps.prober = pr
	l.mu.Unlock()
	delay := time.Duration(o.PunchDelayMs) * time.Millisecond
	probeCtx, probeCancel := context.WithTimeout(ps.ctx, l.cfg.PunchTimeout+delay)
	l.wg.Go(func() {
		defer probeCancel()
		pr.run(probeCtx, delay)
	})
}

// offerTargets parses the addresses to probe: those the broker observed
// for the technician, then the technician's own candidates.
func offerTargets(o *wire.Offer) []netip.AddrPort {
	var targets []netip.AddrPort
	for _, c := range append(append([]wire.Candidate(nil), o.Observed...), o.Params.Candidates...) {
		if ap, err := netip.ParseAddrPort(c.Addr); err == nil {
			targets = append(targets, ap)
		}
	}
	return targets
}

// joinRelay opens the agent's half of the relayed path and pumps it
// until it ends.
func (l *Listener) joinRelay(ps *pendingSession) {
	stream, err := l.cfg.Relay(ps.ctx, ps.broker, ps.grant.Session)
	if err != nil {
		l.log.Info("relay not joined", "session", ps.grant.Session, "err", err)
		return
	}
	listen := l.cfg.Net.ListenPacket
	if l.hub != nil {
		listen = func(string, string) (net.PacketConn, error) { return l.hub.listen() }
	}
	p, err := newPump(listen, stream, l.Port())
	if err != nil {
		stream.Close()
		return
	}
	l.mu.Lock()
	ps.pump = p
	l.mu.Unlock()
	if ps.ctx.Err() != nil { // the offer lapsed while the relay was joining
		p.close()
		return
	}
	p.run()
}

// forgetWhenLapsed forgets the offer when its context ends: the
// technician never came, or the session it became has ended. Its prober
// stops; its relay pump stops unless a session still uses it.
func (l *Listener) forgetWhenLapsed(ps *pendingSession) {
	<-ps.ctx.Done()
	id := ps.grant.Session
	l.mu.Lock()
	if l.pending[id] == ps {
		delete(l.pending, id)
	}
	p, pr := ps.pump, ps.prober
	l.mu.Unlock()
	if pr != nil {
		pr.close()
	}
	if p != nil && !l.activePump(p) {
		p.close()
	}
}

// activePump reports whether an active session uses p.
func (l *Listener) activePump(p *pump) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.active {
		if a.pump == p {
			return true
		}
	}
	return false
}
