package replicate

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/store"
)

// copyTimeout bounds a second copy's push to one broker.
const copyTimeout = 3 * time.Second

// Written gossips the keys of records written here, so the other brokers
// fetch them now rather than at the next anti-entropy round.
func (r *Replicator) Written(keys ...store.Key) {
	if r.cluster == nil {
		return
	}
	for _, k := range keys {
		raw, _ := json.Marshal(k)
		if err := r.cluster.Broadcast(NoticeTopic, raw); err != nil {
			r.cfg.Logger.Debug("replication notice", "key", k, "err", err)
		}
	}
}

// CopyToPeer pushes records just written here to one other alive broker,
// preferring this broker's region, and returns once that broker has
// committed them. Check-ins and enrolments are acknowledged only after
// this, so losing the broker an agent talked to loses no acknowledged
// data: another broker already holds it. When no other broker is alive, or
// none answers within the timeout, the write stays acknowledged on this
// broker alone (logged): availability over a second copy.
func (r *Replicator) CopyToPeer(ctx context.Context, keys ...store.Key) {
	if r.cluster == nil {
		return
	}
	peers := r.copyTargets()
	if len(peers) == 0 {
		return
	}
	recs, err := r.store.Export(keys)
	if err != nil {
		r.cfg.Logger.Warn("replication: export for copy", "err", err)
		return
	}
	for _, m := range peers[:min(2, len(peers))] {
		cctx, cancel := context.WithTimeout(ctx, copyTimeout)
		err := r.push(cctx, m, recs)
		cancel()
		if err == nil {
			return
		}
		r.cfg.Logger.Warn("replication: copy to peer failed", "peer", m.Name, "err", err)
	}
	r.cfg.Logger.Warn("acknowledged with no second copy: no other broker took it", "keys", len(keys))
}

// copyTargets lists the other alive brokers, this broker's region first,
// starting at a rotating offset so copies spread across the cluster.
func (r *Replicator) copyTargets() []cluster.Member {
	var same, other []cluster.Member
	for _, m := range r.cluster.Members() {
		if m.Name == r.cluster.LocalName() || m.State != cluster.StateAlive || m.Meta.PeerID == "" || len(m.Meta.Bridge) == 0 {
			continue
		}
		if m.Region == r.cfg.Region {
			same = append(same, m)
		} else {
			other = append(other, m)
		}
	}
	r.rotate(same)
	r.rotate(other)
	return append(same, other...)
}

// rotate turns ms left by the next copy count, in place.
func (r *Replicator) rotate(ms []cluster.Member) {
	if len(ms) > 1 {
		n := int(r.copies.Add(1)) % len(ms)
		slices.Reverse(ms[:n])
		slices.Reverse(ms[n:])
		slices.Reverse(ms)
	}
}

// push sends records to member m and waits for its commit.
func (r *Replicator) push(ctx context.Context, m cluster.Member, recs []store.Record) error {
	id, err := r.connect(ctx, m)
	if err != nil {
		return err
	}
	var rep reply
	return r.call(ctx, id, request{Op: "push", Records: recs}, &rep)
}
