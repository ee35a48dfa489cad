package broker

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/mesh/turnserver"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// openSession runs OpSessionOpen for technician t: authorise, sign a
// grant, carry the offer to the agent and return its answer.
//
// The broker that holds the machine's bridge does this; any other broker
// answers with a redirect to it, so the offer, the relay and the agent's
// bridge are on one broker.
func (b *Broker) openSession(ctx context.Context, t *wire.Technician, techID peer.ID, req *wire.Request) (any, *wire.Error) {
	var a wire.SessionArgs
	json.Unmarshal(req.Args, &a)
	return b.requestSession(ctx, t, techID, &a, false, func() ([]string, *wire.Error) { return nil, decodeArgs(req, &a) })
}

// requestSession is openSession for arguments a that check validates.
// For a web-console session, check returns the browser's DTLS
// fingerprints, which the grant binds. ctx ends when the technician goes
// away: a request withdrawn while the agent asks for consent is not
// granted.
func (b *Broker) requestSession(ctx context.Context, t *wire.Technician, techID peer.ID, a *wire.SessionArgs, console bool, check func() ([]string, *wire.Error)) (any, *wire.Error) {
	// Every request goes into the audit log with its outcome: granted
	// (after the agent accepted, and after consent where the policy asks
	// for it) or refused, by the broker or by the agent.
	if !b.sessionRate.allow(string(techID), b.cfg.Now()) {
		// Counted, not audited: a flood must not push real entries out.
		b.metrics.refused.WithLabelValues("tech:"+wire.OpSessionOpen, "rate").Inc()
		return nil, wire.Errorf(wire.CodeUnavailable, "too many session requests from this technician; wait a moment")
	}
	// Machine is filled in once resolved among the machines the
	// technician may see, so nobody can plant entries in another
	// client's view.
	ev := wire.AuditEntry{At: b.cfg.Now().UTC(), Technician: t.Name, Mode: a.Mode, Transport: a.Transport}
	if console {
		ev.Detail = "web console"
	}
	var res any
	fingerprints, werr := check()
	if werr == nil {
		res, werr = b.openSessionAudited(ctx, t, techID, a, fingerprints, &ev)
	}
	switch r, _ := res.(wire.SessionResult); {
	case werr != nil:
		ev.Event, ev.Detail = wire.AuditRefused, strings.TrimPrefix(ev.Detail+": "+werr.Message, ": ")
	case r.Redirect != nil:
		return res, nil // the broker it names decides, and records
	default:
		ev.Event = wire.AuditGranted
	}
	b.audit(ev)
	return res, werr
}

// audit appends to the audit log; a failure to record is logged loudly
// but does not undo what happened.
func (b *Broker) audit(e wire.AuditEntry) {
	if e.At.IsZero() {
		e.At = b.cfg.Now().UTC()
	}
	if err := b.store.Audit(e); err != nil {
		b.log.Error("audit log", "err", err, "event", e.Event, "session", e.Session)
	}
}

func (b *Broker) openSessionAudited(ctx context.Context, t *wire.Technician, techID peer.ID, a *wire.SessionArgs, fingerprints []string, ev *wire.AuditEntry) (any, *wire.Error) {
	m, werr := b.findMachine(t, a.Machine)
	if werr != nil {
		return nil, werr
	}
	ev.Machine = m.Client + "/" + m.Name
	if !t.Admin && !slices.Contains(t.Modes, a.Mode) {
		return nil, wire.Errorf(wire.CodeForbidden, "technician %s may not open %s sessions (allowed: %s)",
			t.Name, a.Mode, strings.Join(t.Modes, ", "))
	}
	machine, err := peer.Decode(m.ID)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "machine ID %q: %v", m.ID, err)
	}
	if !b.live.online(m.ID) {
		if r, ok := b.remoteReach(m.ID, m.LastSeen); ok {
			if info, ok := b.brokerInfo(r.Broker); ok {
				return wire.SessionResult{Redirect: &info}, nil
			}
			return nil, wire.Errorf(wire.CodeUnavailable, "%s/%s is connected to broker %s, which this broker cannot describe", m.Client, m.Name, r.Broker)
		}
		seen := "never"
		if m.LastSeen != nil {
			seen = m.LastSeen.UTC().Format(time.RFC3339)
		}
		return nil, wire.Errorf(wire.CodeUnavailable, "%s/%s is not reachable now (last seen %s); its stored state stays readable with meshctl show",
			m.Client, m.Name, seen)
	}
	// A machine that just connected for the first time checks in at
	// once: give it a moment rather than refuse.
	for i := 0; m.LastCheckIn == nil && i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		if cur, ok := b.store.Machine(m.ID); ok {
			m = cur
		}
	}
	if m.LastCheckIn == nil {
		return nil, wire.Errorf(wire.CodeConflict, "%s/%s has never checked in: nothing is known about it yet", m.Client, m.Name)
	}
	now := b.cfg.Now()
	sg, g, err := mesh.IssueGrant(b.key.Priv, wire.Grant{Technician: techID.String(), Machine: m.ID, Mode: a.Mode,
		TechnicianName: t.Name, Fingerprints: fingerprints}, now, b.cfg.GrantTTL)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	relay := a.Transport == wire.TransportAuto || a.Transport == wire.TransportRelay
	if relay {
		if werr := b.relays.expect(g.Session, techID, machine, g.Expires.Add(b.cfg.GrantTTL)); werr != nil {
			relay = false
			if a.Transport == wire.TransportRelay {
				return nil, werr
			}
		}
	}
	o := &wire.Offer{Grant: sg, Transport: a.Transport, Params: a.Params, ParamsSig: a.Sig, Relay: relay,
		STUNPort: b.stunPort()}
	if a.Transport == wire.TransportWebRTC {
		o.TURNUser, o.TURNPassword = b.turnCredentials(m.ID)
	}
	if rtt := b.host.Peerstore().LatencyEWMA(techID); rtt > 0 {
		o.PunchDelayMs = int(rtt / 2 / time.Millisecond)
	}
	// The agent answers at once, or after the person at the machine
	// approves (its consent timeout is 2 minutes by default).
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if a.StunToken != "" && b.stunObs != nil {
		wctx, wcancel := context.WithTimeout(ctx, 250*time.Millisecond)
		if ap, ok := b.stunObs.Wait(wctx, a.StunToken); ok {
			o.Observed = []wire.Candidate{{Kind: wire.CandSrflx, Addr: ap.String()}}
		}
		wcancel()
	}
	var ans wire.Answer
	if err := bridge.Call(ctx, b.host, machine, wire.ProtoSession, o, &ans, wire.MaxControl); err != nil {
		b.relays.forget(g.Session)
		return nil, wire.Errorf(wire.CodeUnavailable, "could not reach %s/%s: %v", m.Client, m.Name, err)
	}
	if ans.Error != nil {
		ev.Session = g.Session
		b.relays.forget(g.Session)
		b.log.Warn("agent refused a session", "machine", m.Client+"/"+m.Name, "technician", t.Name, "code", ans.Error.Code, "reason", ans.Error.Message)
		return nil, ans.Error
	}
	ev.Session = g.Session
	b.grants.add(g.Session, m.ID)
	b.metrics.sessions.WithLabelValues(a.Transport).Inc()
	b.log.Info("session granted", "session", g.Session, "machine", m.Client+"/"+m.Name, "technician", t.Name,
		"mode", a.Mode, "transport", a.Transport, "relay", relay, "expires", g.Expires)
	res := wire.SessionResult{Grant: sg, Session: g.Session, Machine: m.ID, Name: m.Client + "/" + m.Name,
		Answer: ans.Params, AnswerSig: ans.ParamsSig, Relay: relay, RelayName: b.cfg.Name, STUNPort: b.stunPort()}
	return res, nil
}

// findMachine resolves a machine ID, name or client/name among the
// machines t may see.
func (b *Broker) findMachine(t *wire.Technician, name string) (store.Machine, *wire.Error) {
	var found []store.Machine
	for _, m := range b.store.Machines() {
		if !visible(t, m.Client) {
			continue
		}
		if m.ID == name || m.Name == name || m.Client+"/"+m.Name == name {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		return store.Machine{}, wire.Errorf(wire.CodeNotFound, "no machine %q among the machines you can see", name)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, m := range found {
		names = append(names, m.Client+"/"+m.Name)
	}
	return store.Machine{}, wire.Errorf(wire.CodeConflict, "%q is ambiguous: %s", name, strings.Join(names, ", "))
}

// brokerInfo describes a cluster member by name, for redirects.
func (b *Broker) brokerInfo(name string) (wire.BrokerInfo, bool) {
	for _, m := range b.members() {
		if m.Name == name && m.PeerID != "" && len(m.Bridge) > 0 {
			return wire.BrokerInfo{PeerID: m.PeerID, Addrs: m.Bridge, Name: m.Name, Region: m.Region, HTTP: m.HTTP}, true
		}
	}
	return wire.BrokerInfo{}, false
}

// measureRTT pings a newly connected technician once, so the broker knows
// how long an answer takes to reach it and can time the agent's first
// probes to meet the technician's.
func (b *Broker) measureRTT(p peer.ID) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case r := <-ping.Ping(ctx, b.host, p):
		if r.Error == nil {
			b.host.Peerstore().RecordLatency(p, r.RTT)
		}
	case <-ctx.Done():
	}
}

// startSTUN opens the broker's STUN port: binding requests are answered
// with the address seen, and addresses of requests carrying a session
// token are remembered for the offer. The same port serves TURN (pion's
// server) for WebRTC sessions when the broker knows the address relayed
// candidates carry.
func (b *Broker) startSTUN() error {
	if b.cfg.STUN == "off" {
		return nil
	}
	pc, err := net.ListenPacket("udp", b.cfg.STUN)
	if err != nil {
		return fmt.Errorf("broker: stun listen %s: %w", b.cfg.STUN, err)
	}
	b.stunConn, b.stunObs = pc, mesh.NewObserver()
	relayIP := net.ParseIP(b.cfg.TURNIP)
	if relayIP == nil {
		if ua := pc.LocalAddr().(*net.UDPAddr); !ua.IP.IsUnspecified() {
			relayIP = ua.IP
		}
	}
	if relayIP == nil {
		b.log.Warn("TURN relay off: the STUN address is unspecified; set --turn-ip to the address peers reach this broker at")
		return nil
	}
	b.turnSecret = make([]byte, 32)
	rand.Read(b.turnSecret)
	b.turn, err = turnserver.New(turnserver.Config{PacketConn: b.stunObs.Wrap(pc), RelayIP: relayIP,
		Secret: b.turnSecret, MaxAllocations: b.cfg.RelayMaxSessions * 2, Logger: b.log})
	if err != nil {
		pc.Close()
		return fmt.Errorf("broker: turn: %w", err)
	}
	return nil
}

// turnCredentials returns TURN credentials for user, valid for 12 hours:
// a relayed WebRTC session cannot refresh its allocation past them.
func (b *Broker) turnCredentials(user string) (string, string) {
	if b.turn == nil {
		return "", ""
	}
	return turnserver.Credentials(b.turnSecret, user, b.cfg.Now().Add(12*time.Hour))
}

// sessionICE answers OpSessionICE: what a WebRTC offerer needs before it
// gathers candidates.
func (b *Broker) sessionICE(techID peer.ID) wire.ICEInfo {
	u, p := b.turnCredentials(techID.String())
	return wire.ICEInfo{STUNPort: b.stunPort(), TURNUser: u, TURNPassword: p}
}

func (b *Broker) stunPort() int {
	if b.stunConn == nil {
		return 0
	}
	return b.stunConn.LocalAddr().(*net.UDPAddr).Port
}

// handleSessionStatus records the live sessions an agent reports.
func (b *Broker) handleSessionStatus(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer().String()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	var st wire.SessionStatus
	if err := wire.NewReader(s).Read(wire.MaxControl, &st); err != nil {
		b.refuse(s, "session-status", remote, readCode(err), err.Error(), &wire.Reply{})
		return
	}
	prev := b.live.sessions(remote)
	if !b.live.setSessions(remote, st.Sessions) {
		b.refuse(s, "session-status", remote, wire.CodeForbidden, "no presence stream from this machine", &wire.Reply{})
		return
	}
	wire.Write(s, &wire.Reply{})
	b.auditStatus(remote, prev, st.Sessions)
}

// auditStatus records sessions that started or ended between two status
// reports of one agent.
func (b *Broker) auditStatus(machineID string, prev, cur []wire.SessionInfo) {
	name := machineID
	if m, ok := b.store.Machine(machineID); ok {
		name = m.Client + "/" + m.Name
	}
	active := func(ss []wire.SessionInfo) map[string]wire.SessionInfo {
		out := map[string]wire.SessionInfo{}
		for _, s := range ss {
			if s.State != "waiting-for-approval" {
				out[s.Session] = s
			}
		}
		return out
	}
	was, is := active(prev), active(cur)
	for id, s := range is {
		if _, ok := was[id]; !ok {
			b.audit(wire.AuditEntry{Event: wire.AuditStarted, Session: id, Technician: s.Technician, Machine: name, Mode: s.Mode, Path: s.Path})
		}
	}
	for id, s := range was {
		if _, ok := is[id]; !ok {
			b.audit(wire.AuditEntry{Event: wire.AuditEnded, Session: id, Technician: s.Technician, Machine: name, Mode: s.Mode,
				Path: s.Path, Detail: "after " + b.cfg.Now().Sub(s.Started).Round(time.Second).String()})
		}
	}
}

// auditLog answers OpAudit: admins read every entry, other technicians
// the entries of machines in their scope.
func (b *Broker) auditLog(t *wire.Technician, req *wire.Request) (any, *wire.Error) {
	var a wire.AuditArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	if a.Limit == 0 {
		a.Limit = 100
	}
	keep := func(e *wire.AuditEntry) bool {
		if !auditVisible(t, e) {
			return false
		}
		return (a.Machine == "" || e.Machine == a.Machine || strings.HasSuffix(e.Machine, "/"+a.Machine)) &&
			(a.Session == "" || strings.HasPrefix(e.Session, a.Session))
	}
	es, err := b.store.AuditLog(a.Limit, keep)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	return es, nil
}

// auditVisible says whether technician t may see audit entry e: an admin
// sees all; others the entries of machines in their clients.
func auditVisible(t *wire.Technician, e *wire.AuditEntry) bool {
	client, _, ok := strings.Cut(e.Machine, "/")
	return t.Admin || (ok && visible(t, client))
}

// cardSession builds a card's session part from what the agent reported.
func (b *Broker) cardSession(id string) *wire.Session {
	ss := b.live.sessions(id)
	if len(ss) == 0 {
		return nil
	}
	out := &wire.Session{State: "waiting-for-approval"}
	for _, s := range ss {
		if s.State == "waiting-for-approval" {
			out.Waiting++
			continue
		}
		out.State = "active"
		out.Sessions++
		if !slices.Contains(out.Technicians, s.Technician) {
			out.Technicians = append(out.Technicians, s.Technician)
		}
		// The newest session's mode and path lead.
		out.Mode, out.Path = s.Mode, s.Path
		out.InputPaused = out.InputPaused || s.InputPaused
		if s.Shared {
			out.Shared = append(out.Shared, wire.SharedTerminal{Session: s.Session, Technician: s.Technician})
		}
	}
	if load, user, ok := b.live.signals(id); ok {
		out.Busy, out.UserPresent = load >= b.cfg.BusyLoad, user
	}
	return out
}

// relays splices the two halves of relayed sessions. A relayed session is
// a technician's and an agent's bridge streams joined byte for byte: the
// bytes are the session's QUIC packets, encrypted end to end, so the
// broker relays ciphertext it cannot read. Unlike libp2p's circuit relay,
// whose defaults cut a connection after 2 minutes or 128 KiB, a session
// lasts as long as the technician needs; limits are the operator's.
type relays struct {
	b *Broker

	mu      sync.Mutex
	slots   map[string]*relaySlot
	perPeer map[peer.ID]int // active relayed sessions per peer
	active  int
}

type relaySlot struct {
	tech, agent peer.ID
	expires     time.Time
	waiting     network.Stream // the first half, until the second comes
	waitingTech bool
	joined      chan struct{} // closed when spliced (or given up)
	done        chan struct{} // closed when the splice ends
}

func newRelays(b *Broker) *relays {
	return &relays{b: b, slots: map[string]*relaySlot{}, perPeer: map[peer.ID]int{}}
}

// expect admits a session for relaying, within the limits.
func (r *relays) expect(session string, tech, agent peer.ID, expires time.Time) *wire.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg := r.b.cfg
	now := cfg.Now()
	for id, s := range r.slots {
		if now.After(s.expires) && s.waiting == nil {
			delete(r.slots, id) // offered, never joined by either side
		}
	}
	if r.active+len(r.slots) >= cfg.RelayMaxSessions {
		return wire.Errorf(wire.CodeUnavailable, "relay full: %d sessions (RelayMaxSessions)", cfg.RelayMaxSessions)
	}
	for _, p := range []peer.ID{tech, agent} {
		// Offered slots count too, so nobody fills the relay with offers
		// that are never joined.
		n := r.perPeer[p]
		for _, s := range r.slots {
			if s.tech == p || s.agent == p {
				n++
			}
		}
		if n >= cfg.RelayMaxPerPeer {
			return wire.Errorf(wire.CodeUnavailable, "relay limit for %s: %d sessions (RelayMaxPerPeer)", p, cfg.RelayMaxPerPeer)
		}
	}
	r.slots[session] = &relaySlot{tech: tech, agent: agent, expires: expires, joined: make(chan struct{}), done: make(chan struct{})}
	return nil
}

func (r *relays) forget(session string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.slots, session)
}

// handleRelay serves one half of a relayed session.
func (b *Broker) handleRelay(s network.Stream) {
	remote := s.Conn().RemotePeer()
	s.SetDeadline(time.Now().Add(15 * time.Second))
	var h wire.RelayHello
	if err := wire.NewReader(s).Read(wire.MaxControl, &h); err != nil {
		b.refuse(s, "relay", remote.String(), readCode(err), err.Error(), &wire.RelayReady{})
		s.Close()
		return
	}
	r := b.relays
	r.mu.Lock()
	slot := r.slots[h.Session]
	var werr *wire.Error
	switch {
	case slot == nil:
		werr = wire.Errorf(wire.CodeNotFound, "no relayed session %s on this broker", h.Session)
	case remote != slot.tech && remote != slot.agent:
		werr = wire.Errorf(wire.CodeForbidden, "session %s is not yours to relay", h.Session)
	case b.cfg.Now().After(slot.expires):
		werr = wire.Errorf(wire.CodeForbidden, "relayed session %s expired before both sides joined", h.Session)
	case slot.waiting != nil && slot.waitingTech == (remote == slot.tech):
		werr = wire.Errorf(wire.CodeConflict, "this side of session %s has joined already", h.Session)
	}
	if werr != nil {
		r.mu.Unlock()
		b.refuse(s, "relay", remote.String(), werr.Code, werr.Message, &wire.RelayReady{})
		s.Close()
		return
	}
	if slot.waiting == nil {
		slot.waiting, slot.waitingTech = s, remote == slot.tech
		r.mu.Unlock()
		t := time.NewTimer(15 * time.Second)
		defer t.Stop()
		select {
		case <-slot.joined:
			<-slot.done // the second half's handler runs the splice
		case <-t.C:
			r.mu.Lock()
			joined := r.slots[h.Session] != slot // the other side took it just now
			if !joined {
				delete(r.slots, h.Session)
			}
			r.mu.Unlock()
			if joined {
				<-slot.joined
				<-slot.done
				return
			}
			b.refuse(s, "relay", remote.String(), wire.CodeUnavailable, "the other side never joined the relay", &wire.RelayReady{})
			s.Close()
		}
		return
	}
	first := slot.waiting
	delete(r.slots, h.Session)
	r.active++
	r.perPeer[slot.tech]++
	r.perPeer[slot.agent]++
	r.mu.Unlock()
	close(slot.joined)
	defer func() {
		r.mu.Lock()
		r.active--
		for _, p := range []peer.ID{slot.tech, slot.agent} {
			if r.perPeer[p]--; r.perPeer[p] <= 0 {
				delete(r.perPeer, p)
			}
		}
		r.mu.Unlock()
		close(slot.done)
	}()
	for _, st := range []network.Stream{first, s} {
		st.SetDeadline(time.Time{})
		if err := wire.Write(st, &wire.RelayReady{}); err != nil {
			first.Reset()
			s.Reset()
			return
		}
	}
	b.metrics.relayActive.Inc()
	defer b.metrics.relayActive.Dec()
	b.log.Info("relaying session", "session", h.Session, "technician", slot.tech, "agent", slot.agent)
	start := time.Now()
	n := b.splice(first, s)
	b.log.Info("relay ended", "session", h.Session, "bytes", n, "duration", time.Since(start).Round(time.Millisecond))
}

// splice copies both ways until either side ends, within the configured
// per-session byte and time limits, and returns the bytes moved.
func (b *Broker) splice(x, y network.Stream) int64 {
	var total int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	if b.cfg.RelayMaxDuration > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), b.cfg.RelayMaxDuration)
	}
	defer cancel()
	limit := b.cfg.RelayMaxBytes
	one := func(dst, src network.Stream) {
		defer wg.Done()
		defer cancel()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
				b.metrics.relayBytes.Add(float64(n))
				mu.Lock()
				total += int64(n)
				over := limit > 0 && total > limit
				mu.Unlock()
				if over {
					b.log.Warn("relayed session over its byte limit", "limit", limit)
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go one(x, y)
	go one(y, x)
	<-ctx.Done()
	x.Reset()
	y.Reset()
	wg.Wait()
	return total
}

// sessionRate limits session requests per technician key: each opens
// sockets and sends probes on an agent, and may hold a relay slot. A
// technician gets a burst of 10, then one every 200 ms.
type sessionRate struct {
	mu      sync.Mutex
	buckets map[string]*rateBucket // by key: a technician's peer ID, or an address
}

type rateBucket struct {
	tokens float64
	at     time.Time
}

const (
	sessionBurst = 10
	sessionEvery = 200 * time.Millisecond
)

func (r *sessionRate) allow(p string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buckets == nil {
		r.buckets = map[string]*rateBucket{}
	}
	if len(r.buckets) > 10000 {
		for k, b := range r.buckets {
			if now.Sub(b.at) > sessionBurst*sessionEvery {
				delete(r.buckets, k)
			}
		}
	}
	b := r.buckets[p]
	if b == nil {
		b = &rateBucket{tokens: sessionBurst, at: now}
		r.buckets[p] = b
	}
	b.tokens = min(sessionBurst, b.tokens+float64(now.Sub(b.at))/float64(sessionEvery))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// setConsent runs OpConsentSet: a technician with admin rights sets a
// machine's consent policy. The agent holds it (and reports it in
// readiness at its next check-in, which it makes at once), so the machine
// must be reachable through this broker now.
func (b *Broker) setConsent(t *wire.Technician, req *wire.Request) (any, *wire.Error) {
	var a wire.ConsentPolicyArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	m, werr := b.findMachine(t, a.Machine)
	if werr != nil {
		return nil, werr
	}
	if !b.live.online(m.ID) {
		if r, ok := b.remoteReach(m.ID, m.LastSeen); ok {
			return nil, wire.Errorf(wire.CodeUnavailable, "%s/%s is connected to broker %s: set its policy there", m.Client, m.Name, r.Broker)
		}
		return nil, wire.Errorf(wire.CodeUnavailable, "%s/%s is not reachable now; its policy was not changed", m.Client, m.Name)
	}
	id, err := peer.Decode(m.ID)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	a.By, a.Machine = t.Name, ""
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var r wire.Reply
	if err := bridge.Call(ctx, b.host, id, wire.ProtoPolicy, &a, &r, wire.MaxControl); err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "could not reach %s/%s: %v", m.Client, m.Name, err)
	}
	if r.Error != nil {
		return nil, r.Error
	}
	b.log.Info("consent policy set", "machine", m.Client+"/"+m.Name, "policy", a.Policy, "window_s", a.WindowSec, "by", t.Name)
	b.audit(wire.AuditEntry{Event: wire.AuditPolicy, Technician: t.Name, Machine: m.Client + "/" + m.Name,
		Detail: fmt.Sprintf("policy %s, window %ds", a.Policy, a.WindowSec)})
	return map[string]string{"machine": m.Client + "/" + m.Name, "policy": a.Policy}, nil
}

// handleTranscript stores a transcript an agent sends after a session.
func (b *Broker) handleTranscript(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer().String()
	s.SetDeadline(time.Now().Add(time.Minute))
	var t wire.Transcript
	if err := wire.NewReader(s).Read(wire.MaxTranscript/3*4+64<<10, &t); err != nil { // base64
		b.refuse(s, "transcript", remote, readCode(err), err.Error(), &wire.Reply{})
		return
	}
	if len(t.Cast) > wire.MaxTranscript {
		b.refuse(s, "transcript", remote, wire.CodeTooLarge, "transcript over 16 MiB", &wire.Reply{})
		return
	}
	if !b.grants.grantedTo(t.Session, remote) {
		b.refuse(s, "transcript", remote, wire.CodeForbidden, "no session "+t.Session+" was granted to this machine here", &wire.Reply{})
		return
	}
	if _, ok := b.store.Machine(remote); !ok {
		b.refuse(s, "transcript", remote, wire.CodeUnauthorized, "not an enrolled machine", &wire.Reply{})
		return
	}
	t.Machine = remote // an agent can only write its own records
	if err := b.store.PutTranscript(t); err != nil {
		b.refuse(s, "transcript", remote, wire.CodeInternal, err.Error(), &wire.Reply{})
		return
	}
	wire.Write(s, &wire.Reply{})
}

// transcripts answers OpTranscript for the machines t may see.
func (b *Broker) transcripts(t *wire.Technician, req *wire.Request) (any, *wire.Error) {
	var a wire.TranscriptArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	ts, err := b.store.Transcripts(a.Session)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	out := []wire.Transcript{}
	for _, x := range ts {
		if m, ok := b.store.Machine(x.Machine); ok && visible(t, m.Client) {
			x.Machine = m.Client + "/" + m.Name
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil, wire.Errorf(wire.CodeNotFound, "no transcript of session %s among the machines you can see (on this broker)", a.Session)
	}
	return out, nil
}

// granted remembers which machine each recent session was granted to, so
// an agent can only file transcripts of its own sessions.
type granted struct {
	mu    sync.Mutex
	m     map[string]string // session → machine
	order []string
}

const grantedKeep = 100_000

func (g *granted) add(session, machine string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]string{}
	}
	g.m[session] = machine
	g.order = append(g.order, session)
	if len(g.order) > grantedKeep {
		delete(g.m, g.order[0])
		g.order = g.order[1:]
	}
}

func (g *granted) grantedTo(session, machine string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[session] == machine
}
