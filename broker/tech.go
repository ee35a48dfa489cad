package broker

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// handleTech serves one technician request.
func (b *Broker) handleTech(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer().String()
	s.SetDeadline(time.Now().Add(time.Minute))
	var req wire.Request
	if err := wire.NewReader(s).Read(wire.MaxControl, &req); err != nil {
		b.refuse(s, "tech", remote, readCode(err), err.Error(), &wire.Reply{})
		return
	}
	t, err := b.store.TechnicianByKey(remote)
	if err != nil {
		b.refuse(s, "tech", remote, wire.CodeUnauthorized,
			"this key is not a technician of this broker; log in with meshctl login", &wire.Reply{})
		return
	}
	b.metrics.requests.WithLabelValues(req.Op).Inc()
	switch req.Op {
	case wire.OpSessionOpen:
		// The agent may wait for the person at the machine to approve.
		s.SetDeadline(time.Now().Add(4 * time.Minute))
	case wire.OpWaitOnline:
		s.SetDeadline(time.Now().Add(time.Hour + time.Minute))
	}
	// ctx ends when the technician's connection does, for requests that
	// wait (wait.online).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				if s.Conn().IsClosed() {
					cancel()
					return
				}
			}
		}
	}()
	result, werr := b.techOp(ctx, &t, s.Conn().RemotePeer(), &req)
	if werr != nil {
		b.refuse(s, "tech:"+req.Op, remote, werr.Code, werr.Message, &wire.Reply{})
		return
	}
	raw, err := json.Marshal(result)
	if err != nil {
		b.refuse(s, "tech:"+req.Op, remote, wire.CodeInternal, err.Error(), &wire.Reply{})
		return
	}
	wire.Write(s, &wire.Reply{Result: raw})
}

// techOp runs one operation for technician t.
func (b *Broker) techOp(ctx context.Context, t *wire.Technician, techID peer.ID, req *wire.Request) (any, *wire.Error) {
	admin := map[string]bool{wire.OpClientsCreate: true, wire.OpTokensCreate: true,
		wire.OpTechniciansAdd: true, wire.OpTechniciansList: true, wire.OpConsentSet: true}
	if admin[req.Op] && !t.Admin {
		return nil, wire.Errorf(wire.CodeForbidden, "%s needs an admin technician; %s is not one", req.Op, t.Name)
	}
	switch req.Op {
	case wire.OpWhoAmI:
		return t, nil
	case wire.OpConsoleLogin:
		return b.issueCode(t, techID)
	case wire.OpClientsCreate:
		var a wire.ClientArgs
		if err := decodeArgs(req, &a); err != nil {
			return nil, err
		}
		c, err := b.store.CreateClient(a.Name, b.cfg.Now())
		if err == nil {
			b.replicated(store.Key{Kind: store.KindClient, ID: a.Name})
		}
		return c, storeErr(err)
	case wire.OpClientsList:
		cs, err := b.store.Clients()
		cs = slices.DeleteFunc(cs, func(c wire.Client) bool { return !visible(t, c.Name) })
		return cs, storeErr(err)
	case wire.OpTokensCreate:
		var a wire.TokenArgs
		if err := decodeArgs(req, &a); err != nil {
			return nil, err
		}
		return b.createToken(t, &a)
	case wire.OpTechniciansAdd:
		var a wire.TechnicianArgs
		if err := decodeArgs(req, &a); err != nil {
			return nil, err
		}
		return b.addTechnician(&a)
	case wire.OpTechniciansList:
		ts, err := b.store.Technicians()
		return ts, storeErr(err)
	case wire.OpMachines:
		var a wire.MachinesArgs
		if err := decodeArgs(req, &a); err != nil {
			return nil, err
		}
		if err := readiness.ValidateArgs(&a); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
		}
		return b.machines(t, a), nil
	case wire.OpBrokers:
		return b.members(), nil
	case wire.OpSessionOpen:
		return b.openSession(ctx, t, techID, req)
	case wire.OpQueueAdd:
		return b.queueAdd(t, req)
	case wire.OpQueueList:
		return b.queueList(t, req)
	case wire.OpQueueShow:
		return b.queueShow(t, req)
	case wire.OpQueueCancel:
		return b.queueCancel(t, req)
	case wire.OpAlerts:
		return b.alerts.list(t), nil
	case wire.OpWaitOnline:
		return b.waitOnline(ctx, t, req)
	case wire.OpTranscript:
		return b.transcripts(t, req)
	case wire.OpAudit:
		return b.auditLog(t, req)
	case wire.OpConsentSet:
		return b.setConsent(t, req)
	case wire.OpSessionICE:
		return b.sessionICE(techID), nil
	case wire.OpShow:
		var a wire.ShowArgs
		if err := decodeArgs(req, &a); err != nil {
			return nil, err
		}
		return b.show(t, a.Machine)
	}
	return nil, wire.Errorf(wire.CodeBadRequest, "unknown operation %q", req.Op)
}

func decodeArgs(req *wire.Request, v any) *wire.Error {
	if len(req.Args) == 0 {
		req.Args = []byte("{}")
	}
	if err := wire.Decode(req.Args, v); err != nil {
		return wire.Errorf(wire.CodeBadRequest, "%s: %v", req.Op, err)
	}
	return nil
}

func storeErr(err error) *wire.Error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrExists):
		return wire.Errorf(wire.CodeConflict, "%v", err)
	case errors.Is(err, store.ErrNotFound):
		return wire.Errorf(wire.CodeNotFound, "%v", err)
	}
	return wire.Errorf(wire.CodeInternal, "%v", err)
}

// visible reports whether technician t may see client's machines.
func visible(t *wire.Technician, client string) bool {
	return t.Admin || slices.Contains(t.Clients, "*") || slices.Contains(t.Clients, client)
}

func (b *Broker) createToken(t *wire.Technician, a *wire.TokenArgs) (any, *wire.Error) {
	uses, ttl := a.Uses, time.Duration(a.TTLSec)*time.Second
	if uses == 0 {
		uses = 1
	}
	if ttl == 0 {
		ttl = b.cfg.TokenTTL
	}
	now := b.cfg.Now().UTC()
	tok := wire.Token{Kind: wire.KindEnroll, Secret: wire.NewSecret(), Broker: b.Info()}
	rec := store.Token{Client: a.Client, UsesLeft: uses, Uses: uses, ExpiresAt: now.Add(ttl),
		CreatedBy: t.Name, CreatedAt: now}
	if err := b.store.CreateToken(wire.HashSecret(tok.Secret), rec); err != nil {
		return nil, storeErr(err)
	}
	b.replicated(store.Key{Kind: store.KindToken, ID: wire.HashSecret(tok.Secret)})
	b.log.Info("enrolment token created", "client", a.Client, "uses", uses, "expires", rec.ExpiresAt, "by", t.Name)
	return wire.TokenResult{Token: tok.String(), Client: a.Client, Uses: uses, ExpiresAt: rec.ExpiresAt}, nil
}

func (b *Broker) addTechnician(a *wire.TechnicianArgs) (any, *wire.Error) {
	now := b.cfg.Now().UTC()
	t := wire.Technician{Name: a.Name, Clients: a.Clients, Modes: a.Modes, CreatedAt: now}
	tok := wire.Token{Kind: wire.KindLogin, Secret: wire.NewSecret(), Broker: b.Info()}
	exp := now.Add(b.cfg.LoginTTL)
	if err := b.store.CreateTechnician(t, wire.HashSecret(tok.Secret), exp); err != nil {
		return nil, storeErr(err)
	}
	b.replicated(store.Key{Kind: store.KindTechnician, ID: t.Name})
	b.log.Info("technician added", "technician", a.Name, "clients", a.Clients, "modes", a.Modes)
	return wire.TechnicianResult{Technician: t, LoginToken: tok.String(), ExpiresAt: exp}, nil
}

// machines lists the cards t may see, in queue order.
func (b *Broker) machines(t *wire.Technician, a wire.MachinesArgs) []wire.Card {
	ms := b.store.Machines()
	reach := func(m *store.Machine) wire.Reachability { return b.reach(m) }
	vis := func(c string) bool { return visible(t, c) }
	cards := readiness.Query(ms, reach, vis, a, b.cfg.Now(), b.cfg.Readiness)
	for i := range cards {
		cards[i].Session = b.cardSession(cards[i].ID)
	}
	if a.For != "" {
		cards = slices.DeleteFunc(cards, func(c wire.Card) bool { return !b.fitFor(a.For, &c) })
	}
	return cards
}

// show returns one machine's card with its full stored state. name may be
// a machine ID, a name, or client/name when a name is used in two clients.
func (b *Broker) show(t *wire.Technician, name string) (any, *wire.Error) {
	m, werr := b.findMachine(t, name)
	if werr != nil {
		return nil, werr
	}
	all := b.store.Machines()
	card := readiness.Card(&m, b.reach(&m),
		b.cfg.Readiness.Newest(all), b.cfg.Now(), b.cfg.Readiness)
	snap, err := b.store.Snapshot(m.ID)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	hist, err := b.store.History(m.ID)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	card.Snapshot, card.History = snap, hist
	card.Session = b.cardSession(m.ID)
	return card, nil
}

// reach is a machine's reachability: through this broker, or through
// another broker of the cluster.
func (b *Broker) reach(m *store.Machine) wire.Reachability {
	r := b.live.reach(m.ID, m.LastSeen, b.cfg.Name)
	if r.Online {
		return r
	}
	if rr, ok := b.remoteReach(m.ID, m.LastSeen); ok {
		return rr
	}
	return r
}

// fitFor reports whether a card suits a kind of work, from all three
// layers: readiness (stored), reachability (now) and session status.
func (b *Broker) fitFor(kind string, c *wire.Card) bool {
	r := c.Reachability
	if !r.Online {
		return false
	}
	switch kind {
	case wire.ForQuickFix:
		busy := r.Load1 != nil && *r.Load1 >= b.cfg.BusyLoad
		waiting := c.Session != nil && c.Session.Waiting > 0
		return c.Readiness.State == wire.StateReady && !busy && !waiting
	case wire.ForMaintenance:
		return r.UserPresent != nil && !*r.UserPresent
	}
	return false
}

// waitOnline answers when the machine is reachable, through this broker
// or another of the cluster, or refuses after the timeout. It watches the
// reachability overlay; nothing is stored.
func (b *Broker) waitOnline(ctx context.Context, t *wire.Technician, req *wire.Request) (any, *wire.Error) {
	var a wire.WaitArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	m, werr := b.findMachine(t, a.Machine)
	if werr != nil {
		return nil, werr
	}
	deadline := time.Now().Add(time.Duration(a.TimeoutSec) * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if cur, ok := b.store.Machine(m.ID); ok {
			m = cur
		}
		if r := b.reach(&m); r.Online {
			card := readiness.Card(&m, r, b.cfg.Readiness.Newest(b.store.Machines()), b.cfg.Now(), b.cfg.Readiness)
			card.Session = b.cardSession(m.ID)
			return card, nil
		}
		if time.Now().After(deadline) {
			return nil, wire.Errorf(wire.CodeUnavailable, "%s/%s did not come online within %ds", m.Client, m.Name, a.TimeoutSec)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, wire.Errorf(wire.CodeUnavailable, "the technician left")
		}
	}
}
