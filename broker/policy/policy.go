// Package policy answers the technician operations on the fleet's
// metered-connection policy for agents: set and clear (admins), list
// (every technician, within its scope).
//
// A policy says what an agent does on a metered connection: carry on
// (normal) or go quiet, closing its bridge and checking in on a long
// cadence until the connection is unmetered. It is set for a client's
// machines or for one machine, whose own policy wins. The store keeps it
// as a replicated record (store.PolicyRecord), so every broker tells an
// agent the same policy in its presence hello reply and check-in acks,
// wherever the agent connects; an agent with no policy set follows its
// own flags (sessiond run --on-metered). Each write is replicated at once,
// recorded in the audit log and logged.
package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Store is what the room reads and writes.
type Store interface {
	SetPolicy(scope string, p wire.AgentPolicy, by string, now time.Time) (store.PolicyRecord, error)
	ClearPolicy(scope string) (store.PolicyRecord, error)
	Policies() []store.PolicyRecord
	ClientExists(name string) bool
	Machine(id string) (store.Machine, bool)
	Machines() []store.Machine
}

// Audit records each write.
type Audit interface {
	Add(wire.AuditEntry)
}

// Replication carries a written record to the other brokers at once.
type Replication interface {
	Written(keys ...store.Key)
}

// Config configures the room.
type Config struct {
	// Logger receives each write. Nil means discard.
	Logger *slog.Logger
	// Now stamps each write. Nil means time.Now.
	Now func() time.Time
}

// Deps is what the room needs of the broker. None may be nil.
type Deps struct {
	Store       Store
	Audit       Audit
	Replication Replication
}

// Room answers the policy operations.
type Room struct {
	cfg  Config
	deps Deps
}

// New returns the room.
func New(cfg Config, deps Deps) *Room {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Room{cfg: cfg, deps: deps}
}

// target is a scope resolved among what a technician may see.
type target struct {
	scope  string
	client string // for a client's policy
	id     string // for a machine's
	// machine is the machine's client/name; empty for a machine removed
	// from the fleet.
	machine string
}

// name is how the target reads in replies, logs and the audit log.
func (t *target) name() string {
	switch {
	case t.id == "":
		return "client " + t.client
	case t.machine == "":
		return "removed machine " + t.id
	}
	return "machine " + t.machine
}

// resolve finds the client or the machine a scope names, among those t
// may see: one outside its scope is "not found", as everywhere.
func (r *Room) resolve(t *wire.Technician, a *wire.PolicyScope) (target, *wire.Error) {
	if a.Client != "" {
		if !scope.Visible(t, a.Client) || !r.deps.Store.ClientExists(a.Client) {
			return target{}, wire.Errorf(wire.CodeNotFound, "no client %q among the clients you can see", a.Client)
		}
		return target{scope: store.ClientScope(a.Client), client: a.Client}, nil
	}
	m, werr := scope.Find(r.deps.Store, t, a.Machine)
	if werr != nil {
		return target{}, werr
	}
	return target{scope: store.MachineScope(m.ID), id: m.ID, machine: m.Client + "/" + m.Name}, nil
}

// Set runs wire.OpPolicySet for admin t.
func (r *Room) Set(t *wire.Technician, a *wire.PolicyArgs) (wire.Policy, *wire.Error) {
	tg, werr := r.resolve(t, &a.PolicyScope)
	if werr != nil {
		return wire.Policy{}, werr
	}
	rec, err := r.deps.Store.SetPolicy(tg.scope, a.AgentPolicy, t.Name, r.cfg.Now())
	if err != nil {
		return wire.Policy{}, writeError(err)
	}
	r.deps.Replication.Written(store.Key{Kind: store.KindPolicy, ID: tg.scope})
	detail := tg.name() + ": " + Describe(rec.Agent())
	r.deps.Audit.Add(wire.AuditEntry{Event: wire.AuditMeteredPolicy, Technician: t.Name, Machine: tg.machine, Detail: detail})
	r.cfg.Logger.Info("metered policy set", "scope", tg.scope, "on_metered", rec.OnMetered,
		"quiet_check_in_s", rec.QuietCheckInSec, "by", t.Name)
	return r.view(&rec), nil
}

// Clear runs wire.OpPolicyClear for admin t: the scope's machines follow
// their client's policy again, or their agents' own flags. An admin may
// name a removed machine by its ID, to clear a policy it left behind.
func (r *Room) Clear(t *wire.Technician, a *wire.PolicyScope) (wire.Policy, *wire.Error) {
	tg, werr := r.resolve(t, a)
	if werr != nil {
		var ok bool
		if tg, ok = r.orphan(t, a); !ok {
			return wire.Policy{}, werr
		}
	}
	old, err := r.deps.Store.ClearPolicy(tg.scope)
	if errors.Is(err, store.ErrNotFound) {
		return wire.Policy{}, wire.Errorf(wire.CodeNotFound, "no metered policy is set for %s", tg.name())
	}
	if err != nil {
		return wire.Policy{}, writeError(err)
	}
	r.deps.Replication.Written(store.Key{Kind: store.KindPolicy, ID: tg.scope})
	r.deps.Audit.Add(wire.AuditEntry{Event: wire.AuditMeteredPolicy, Technician: t.Name, Machine: tg.machine,
		Detail: tg.name() + ": cleared (was " + Describe(old.Agent()) + ")"})
	r.cfg.Logger.Info("metered policy cleared", "scope", tg.scope, "was", old.OnMetered, "by", t.Name)
	return r.view(&old), nil
}

// orphan finds the policy of a machine no longer stored (removed from the
// fleet), named by its ID: admins only, since no client says who else may
// see it.
func (r *Room) orphan(t *wire.Technician, a *wire.PolicyScope) (target, bool) {
	if !t.Admin || a.Machine == "" {
		return target{}, false
	}
	sc := store.MachineScope(a.Machine)
	for _, p := range r.deps.Store.Policies() {
		if p.Scope == sc {
			return target{scope: sc, id: a.Machine}, true
		}
	}
	return target{}, false
}

// List runs wire.OpPolicyList: the policies of the clients and machines t
// may see, by scope. A removed machine's policy is listed to admins only.
func (r *Room) List(t *wire.Technician) ([]wire.Policy, *wire.Error) {
	out := []wire.Policy{}
	for _, rec := range r.deps.Store.Policies() {
		p := r.view(&rec)
		switch {
		case p.Client == "" && !t.Admin:
		case p.Client != "" && !scope.Visible(t, p.Client):
		default:
			out = append(out, p)
		}
	}
	return out, nil
}

// view is a stored policy as operations answer it, with its machine's
// client and name when the machine is stored.
func (r *Room) view(rec *store.PolicyRecord) wire.Policy {
	p := wire.Policy{Scope: rec.Scope, AgentPolicy: rec.Agent(), SetBy: rec.By, SetAt: rec.At}
	client, id, err := store.ParseScope(rec.Scope)
	if err != nil { // the store validated it
		return p
	}
	p.Client, p.MachineID = client, id
	if id != "" {
		if m, ok := r.deps.Store.Machine(id); ok {
			p.Client, p.Machine = m.Client, m.Client+"/"+m.Name
		}
	}
	return p
}

// Describe says what a policy does, for replies, logs and the audit log:
// "quiet on metered connections, checking in every 6h0m0s".
func Describe(p wire.AgentPolicy) string {
	switch {
	case p.OnMetered == wire.MeteredNormal:
		return "normal on metered connections"
	case p.OnMetered == wire.MeteredQuiet && p.QuietCheckInSec > 0:
		return fmt.Sprintf("quiet on metered connections, checking in every %s", time.Duration(p.QuietCheckInSec)*time.Second)
	case p.OnMetered == wire.MeteredQuiet:
		return "quiet on metered connections, checking in at the agent's own quiet interval"
	}
	return "none (the agent's own flags)"
}

// writeError maps a refused write to its wire error.
func writeError(err error) *wire.Error {
	if errors.Is(err, store.ErrMalformed) {
		return wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	return serve.StoreError(err)
}
