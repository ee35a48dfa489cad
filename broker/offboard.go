package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// Offboarding: the admin operations that end access (see store's
// offboard.go for what each writes), and the revoker, which ends what a
// revoked party holds open on this broker. The store reports every end of
// access it commits, this broker's own and those replicated from the
// others, so each broker ends its own bridges, console sign-ins and
// agents' sessions within a replication notice of the write.

// offboardOps are the admin operations that end access.
func (r *rooms) offboardOps() map[string]opFunc {
	return map[string]opFunc{
		wire.OpMachinesRemove: withArgs(r.removeMachine),
		wire.OpTechniciansDisable: withArgs(func(_ context.Context, c *call, a *wire.NameArgs) (any, *wire.Error) {
			return r.setDisabled(c, a.Name, true)
		}),
		wire.OpTechniciansEnable: withArgs(func(_ context.Context, c *call, a *wire.NameArgs) (any, *wire.Error) {
			return r.setDisabled(c, a.Name, false)
		}),
		wire.OpTechniciansRemove: withArgs(r.removeTechnician),
		wire.OpTokensList:        r.listTokens,
		wire.OpTokensRevoke:      withArgs(r.revokeToken),
		wire.OpClientsRemove:     withArgs(r.removeClient),
	}
}

// removeMachine runs OpMachinesRemove: the machine leaves the fleet and
// its queued jobs are cancelled.
func (r *rooms) removeMachine(_ context.Context, c *call, a *wire.ShowArgs) (any, *wire.Error) {
	m, werr := scope.Find(r.store, c.t, a.Machine)
	if werr != nil {
		return nil, werr
	}
	rm, err := r.store.RemoveMachine(m.ID, c.t.Name, r.now())
	if err != nil {
		return nil, offboardError(err)
	}
	r.repl.Written(store.Key{Kind: store.KindRemoval, ID: m.ID})
	n, err := r.queue.CancelMachine(m.ID, c.t.Name)
	if err != nil {
		r.logger.Warn("removed machine: cancelling its queued jobs failed", "machine", m.ID, "err", err)
	}
	r.audit.Add(wire.AuditEntry{Event: wire.AuditMachineRemoved, Technician: c.t.Name, Machine: m.Client + "/" + m.Name,
		Detail: "machine " + m.ID})
	return wire.Removal{Machine: m.ID, Client: rm.Client, Name: rm.Name, By: rm.By, At: rm.At, JobsCancelled: n}, nil
}

// setDisabled runs OpTechniciansDisable and OpTechniciansEnable.
func (r *rooms) setDisabled(c *call, name string, disabled bool) (any, *wire.Error) {
	t, err := r.store.SetTechnicianDisabled(name, disabled, c.t.Name, r.now())
	if err != nil {
		return nil, offboardError(err)
	}
	r.repl.Written(store.Key{Kind: store.KindTechnician, ID: name})
	ev := wire.AuditTechnicianEnabled
	if disabled {
		ev = wire.AuditTechnicianDisabled
	}
	r.audit.Add(wire.AuditEntry{Event: ev, Technician: c.t.Name, Detail: "technician " + name})
	return t, nil
}

// removeTechnician runs OpTechniciansRemove.
func (r *rooms) removeTechnician(_ context.Context, c *call, a *wire.NameArgs) (any, *wire.Error) {
	if err := r.store.RemoveTechnician(a.Name, c.t.Name, r.now()); err != nil {
		return nil, offboardError(err)
	}
	r.repl.Written(store.Key{Kind: store.KindTechnician, ID: a.Name})
	r.audit.Add(wire.AuditEntry{Event: wire.AuditTechnicianRemoved, Technician: c.t.Name, Detail: "technician " + a.Name})
	return map[string]string{"removed": a.Name}, nil
}

// listTokens runs OpTokensList.
func (r *rooms) listTokens(context.Context, *call) (any, *wire.Error) {
	ts, err := r.store.Tokens()
	if err != nil {
		return nil, serve.StoreError(err)
	}
	out := make([]wire.TokenInfo, len(ts))
	for i, t := range ts {
		out[i] = tokenInfo(t)
	}
	return out, nil
}

func tokenInfo(t store.TokenInfo) wire.TokenInfo {
	return wire.TokenInfo{ID: t.ID, Client: t.Client, UsesLeft: t.UsesLeft, Uses: t.Uses, ExpiresAt: t.ExpiresAt,
		CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt}
}

// revokeToken runs OpTokensRevoke.
func (r *rooms) revokeToken(_ context.Context, c *call, a *wire.NameArgs) (any, *wire.Error) {
	t, key, err := r.store.RevokeToken(a.Name)
	if err != nil {
		return nil, offboardError(err)
	}
	r.repl.Written(key)
	r.audit.Add(wire.AuditEntry{Event: wire.AuditTokenRevoked, Technician: c.t.Name,
		Detail: "token " + t.ID + " of client " + t.Client})
	return tokenInfo(t), nil
}

// removeClient runs OpClientsRemove.
func (r *rooms) removeClient(_ context.Context, c *call, a *wire.ClientRemoveArgs) (any, *wire.Error) {
	ids, keys, err := r.store.RemoveClient(a.Name, a.Force, c.t.Name, r.now())
	if err != nil {
		return nil, offboardError(err)
	}
	r.repl.Written(keys...)
	for _, id := range ids {
		if _, err := r.queue.CancelMachine(id, c.t.Name); err != nil {
			r.logger.Warn("removed client: cancelling a machine's queued jobs failed", "machine", id, "err", err)
		}
	}
	r.audit.Add(wire.AuditEntry{Event: wire.AuditClientRemoved, Technician: c.t.Name,
		Detail: fmt.Sprintf("client %s with %d machine(s)", a.Name, len(ids))})
	return wire.ClientRemoved{Name: a.Name, Machines: ids}, nil
}

// offboardError maps a refused offboarding write to its wire error.
func offboardError(err error) *wire.Error {
	switch {
	case errors.Is(err, store.ErrRemoved):
		return wire.Errorf(wire.CodeGone, "%v", err)
	case errors.Is(err, store.ErrProtected):
		return wire.Errorf(wire.CodeForbidden, "%v: rotate the admin credential instead (broker admin-credential --rotate)", err)
	case errors.Is(err, store.ErrClientInUse):
		return wire.Errorf(wire.CodeConflict, "%v", err)
	}
	return serve.StoreError(err)
}

// revoker ends, on this broker, what each revoked party holds open. The
// store hands it revocations from its writer goroutine, which must not
// wait, so they queue here and one goroutine (Run) works through them.
type revoker struct {
	host    host.Host
	online  func() []string
	console interface{ EndSignIns(keys []string) int }
	log     *slog.Logger

	mu      sync.Mutex
	pending []store.Revoked
	wake    chan struct{} // capacity 1: a revocation is pending
}

// revokeTimeout bounds telling one agent about a revoked technician.
const revokeTimeout = 5 * time.Second

// revokeParallel bounds the agents told at once.
const revokeParallel = 32

func newRevoker() *revoker { return &revoker{wake: make(chan struct{}, 1)} }

// note queues a revocation; it never blocks (store.Config.OnRevoke).
func (v *revoker) note(r store.Revoked) {
	v.mu.Lock()
	v.pending = append(v.pending, r)
	v.mu.Unlock()
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// Run works through revocations until ctx ends.
func (v *revoker) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-v.wake:
		}
		v.mu.Lock()
		batch := v.pending
		v.pending = nil
		v.mu.Unlock()
		for _, r := range batch {
			v.apply(ctx, r)
		}
	}
}

// apply ends what r's party holds open here: its bridges (every stream on
// them: requests, terminals through the relay, its machine's presence),
// its console sign-ins, and, for a technician, its sessions on the agents
// bridged here.
func (v *revoker) apply(ctx context.Context, r store.Revoked) {
	if r.Machine != "" {
		v.closePeers([]string{r.Machine})
		v.log.Info("machine removed: bridge closed", "machine", r.Machine, "reason", r.Reason)
		return
	}
	v.closePeers(r.Keys)
	signIns := v.console.EndSignIns(r.Keys)
	told := v.tellAgents(ctx, r)
	v.log.Info("technician revoked", "technician", r.Technician, "reason", r.Reason,
		"keys", len(r.Keys), "console_sign_ins", signIns, "agents_told", told)
}

func (v *revoker) closePeers(ids []string) {
	for _, s := range ids {
		if id, err := peer.Decode(s); err == nil {
			v.host.Network().ClosePeer(id)
		}
	}
}

// tellAgents tells every agent bridged here that r's technician is
// revoked, revokeParallel at a time, and returns how many took it. Agents
// of earlier releases do not know the protocol; their sessions end when
// the technician's grant lapses and its bridges close.
func (v *revoker) tellAgents(ctx context.Context, r store.Revoked) int {
	if len(r.Keys) == 0 {
		return 0
	}
	msg := &wire.Revocation{Technician: r.Technician, Keys: r.Keys, Reason: r.Reason}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		told int
		sem  = make(chan struct{}, revokeParallel)
	)
	for _, s := range v.online() {
		id, err := peer.Decode(s)
		if err != nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, revokeTimeout)
			defer cancel()
			var rep wire.Reply
			err := bridge.Call(cctx, v.host, id, wire.ProtoRevoke, msg, &rep, wire.MaxControl)
			if err == nil && rep.Error == nil {
				mu.Lock()
				told++
				mu.Unlock()
				return
			}
			v.log.Debug("could not tell an agent of a revocation", "machine", id, "err", cmpErr(err, rep.Error))
		})
	}
	wg.Wait()
	return told
}

func cmpErr(err error, e *wire.Error) error {
	if err != nil || e == nil {
		return err
	}
	return e
}
