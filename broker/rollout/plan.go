package rollout

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Defaults of a rollout's plan: what wire.RolloutArgs's zero values (a
// nil FailPct) resolve to. An explicit FailPct of 0 stays 0.
const (
	DefaultHealthWindow = 15 * time.Minute
	DefaultMaxParallel  = 50
	DefaultFailPct      = 10
)

// Audit events.
const (
	EventStarted = "rollout.started"
	EventPaused  = "rollout.paused"
	EventResumed = "rollout.resumed"
	EventAborted = "rollout.aborted"
	EventDone    = "rollout.done"
)

// Start runs OpRolloutStart: it plans a rollout of a published release
// to the machines a selects, as they are now, and lets the driver run it.
func (r *Room) Start(t *wire.Technician, a *wire.RolloutArgs) (wire.Rollout, *wire.Error) {
	if !t.Admin {
		return wire.Rollout{}, wire.Errorf(wire.CodeForbidden, "only an admin starts a rollout")
	}
	rel, werr := r.published(a.Version)
	if werr != nil {
		return wire.Rollout{}, werr
	}
	ms, werr := r.targets(a)
	if werr != nil {
		return wire.Rollout{}, werr
	}
	if werr := r.overlap(ms); werr != nil {
		return wire.Rollout{}, werr
	}
	rec := r.plan(t, a, ms, rel)
	if err := r.deps.Store.CreateRollout(rec); err != nil {
		r.cfg.Logger.Warn("rollout not stored", "version", a.Version, "err", err)
		return wire.Rollout{}, wire.Errorf(wire.CodeInternal, "rollout not stored: %v", err)
	}
	r.deps.Replicated(store.Key{Kind: store.KindRollout, ID: rec.ID})
	r.deps.Audit.Add(wire.AuditEntry{Event: EventStarted, Technician: t.Name, Detail: fmt.Sprintf("rollout %s (%s): %d machines, %d in the canary wave",
		rec.ID, rec.Version, len(rec.Canary)+len(rec.Rest), len(rec.Canary))})
	r.cfg.Logger.Info("rollout started", "rollout", rec.ID, "version", rec.Version, "by", t.Name,
		"machines", len(rec.Canary)+len(rec.Rest), "canary", len(rec.Canary))
	r.Kick()
	return r.show(&rec, scopeOf(t), false)
}

// published checks that version is a release agents may be given.
func (r *Room) published(version string) (relInfo, *wire.Error) {
	rec, found, err := r.deps.Releases.Release(version)
	switch {
	case err != nil:
		return relInfo{}, wire.Errorf(wire.CodeInternal, "release %s: %v", version, err)
	case !found:
		return relInfo{}, wire.Errorf(wire.CodeNotFound, "no release %s: publish it first (meshctl releases publish DIR)", version)
	case rec.Withdrawn:
		return relInfo{}, wire.Errorf(wire.CodeConflict, "release %s was withdrawn by %s", version, rec.WithdrawnBy)
	}
	info, _ := r.release(version)
	return info, nil
}

// targets are the machines a selects: every machine of its clients, or
// of the fleet.
func (r *Room) targets(a *wire.RolloutArgs) ([]store.Machine, *wire.Error) {
	for _, c := range a.Clients {
		if !r.deps.Store.ClientExists(c) {
			return nil, wire.Errorf(wire.CodeNotFound, "no client %q", c)
		}
	}
	ms := slices.DeleteFunc(r.deps.Store.Machines(), func(m store.Machine) bool {
		return !a.All && !slices.Contains(a.Clients, m.Client)
	})
	switch {
	case len(ms) == 0:
		return nil, wire.Errorf(wire.CodeNotFound, "no machines to update: the clients named have none")
	case len(ms) > store.MaxRolloutMachines:
		return nil, wire.Errorf(wire.CodeBadRequest, "%d machines; a rollout takes at most %d: split it by client", len(ms), store.MaxRolloutMachines)
	}
	return ms, nil
}

// overlap refuses machines that an active rollout still holds: two
// rollouts would send one machine two updates.
func (r *Room) overlap(ms []store.Machine) *wire.Error {
	recs, err := r.deps.Store.Rollouts(func(rec *store.RolloutRecord) bool { return rec.Active() })
	if err != nil {
		return wire.Errorf(wire.CodeInternal, "rollouts: %v", err)
	}
	for i := range recs {
		held := map[string]bool{}
		for _, id := range append(slices.Clone(recs[i].Canary), recs[i].Rest...) {
			held[id] = true
		}
		n := 0
		for j := range ms {
			if held[ms[j].ID] {
				n++
			}
		}
		if n > 0 {
			return wire.Errorf(wire.CodeConflict, "rollout %s (%s) is %s and holds %d of these machines: wait for it, or abort it",
				recs[i].ID, recs[i].Version, recs[i].State, n)
		}
	}
	return nil
}

// plan builds the rollout record: the plan with its defaults, and the
// waves. The canary wave is that share of the machines that need the
// update (a canary already on the version would prove nothing), at least
// one when the share is above zero; canaries are picked ready first,
// then online, then one per client before a second of any client.
func (r *Room) plan(t *wire.Technician, a *wire.RolloutArgs, ms []store.Machine, rel relInfo) store.RolloutRecord {
	now := r.cfg.Now().UTC()
	rec := store.RolloutRecord{ID: newID(), Version: a.Version, Clients: slices.Clone(a.Clients), All: a.All, CanaryPct: a.CanaryPct,
		HealthWindowSec: a.HealthWindowSec, MaxParallel: a.MaxParallel, FailPct: DefaultFailPct, Rollback: a.Rollback,
		RequiresConsent: a.RequiresConsent, CreatedBy: t.Name, CreatedAt: now, Changed: now, Home: r.cfg.Name}
	if rec.HealthWindowSec == 0 {
		rec.HealthWindowSec = int(DefaultHealthWindow / time.Second)
	}
	if rec.MaxParallel == 0 {
		rec.MaxParallel = DefaultMaxParallel
	}
	if a.FailPct != nil {
		rec.FailPct = *a.FailPct
	}
	order, needy := r.canaryOrder(&rec, ms, rel, now)
	k := 0
	if a.CanaryPct > 0 && needy > 0 {
		k = max(1, (needy*a.CanaryPct+99)/100)
	}
	rec.Canary, rec.Rest = order[:k:k], order[k:]
	sort.Strings(rec.Rest)
	rec.State, rec.WaveStarted[0] = wire.RolloutCanary, now
	if k == 0 {
		rec.State, rec.WaveStarted[1] = wire.RolloutRolling, now
	}
	return rec
}

// canaryOrder orders ms as canaries are picked and returns how many of
// them need the update.
func (r *Room) canaryOrder(rec *store.RolloutRecord, ms []store.Machine, rel relInfo, now time.Time) ([]string, int) {
	type cand struct {
		id, client, name string
		class, rank      int
	}
	st := &stepper{r: rec, rel: rel, now: now}
	cs := make([]cand, len(ms))
	needy := 0
	for i := range ms {
		m := &ms[i]
		c := cand{id: m.ID, client: m.Client, name: m.Name}
		if st.skip(m) != "" {
			c.class |= 4
		} else {
			needy++
		}
		if readiness.Evaluate(m, "", now, r.cfg.Policy).State != wire.StateReady {
			c.class |= 2
		}
		if !r.deps.Reach.Reach(m).Online {
			c.class |= 1
		}
		cs[i] = c
	}
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.class != b.class {
			return a.class < b.class
		}
		if a.client != b.client {
			return a.client < b.client
		}
		if a.name != b.name {
			return a.name < b.name
		}
		return a.id < b.id
	})
	seen := map[[2]any]int{}
	for i := range cs {
		k := [2]any{cs[i].client, cs[i].class}
		cs[i].rank = seen[k]
		seen[k]++
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].class != cs[j].class {
			return cs[i].class < cs[j].class
		}
		return cs[i].rank < cs[j].rank
	})
	out := make([]string, len(cs))
	for i := range cs {
		out[i] = cs[i].id
	}
	return out, needy
}

// newID is a new rollout ID: 12 hex digits.
func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
