package replicate

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

var _ cluster.StateHook = (*Replicator)(nil)

// LocalDigest implements cluster.StateHook: the store's digest, carried
// by each push/pull exchange.
func (r *Replicator) LocalDigest() []byte {
	raw, err := r.store.Digest().MarshalBinary()
	if err != nil {
		r.cfg.Logger.Warn("replication: digest", "err", err)
		return nil
	}
	return raw
}

// MergeDigest implements cluster.StateHook: a peer's digest, whose
// differing buckets are pulled.
func (r *Replicator) MergeDigest(from cluster.Member, digest []byte) {
	var d store.Digest
	if err := d.UnmarshalBinary(digest); err != nil {
		r.cfg.Logger.Warn("replication: bad digest", "from", from.Name, "err", err)
		return
	}
	if r.tracks(from) {
		r.lag.heard(from.Name, r.cfg.Now())
	}
	if diff := r.store.DiffBuckets(d); len(diff) > 0 {
		r.enqueue(from, diff, nil)
	} else if r.tracks(from) {
		r.lag.synced(from.Name, r.cfg.Now())
	}
}

// Notice handles a gossiped key (NoticeTopic): fetch it from the broker
// that wrote it.
func (r *Replicator) Notice(from string, payload []byte) {
	var k store.Key
	if err := json.Unmarshal(payload, &k); err != nil || k.ID == "" || r.cluster == nil {
		return
	}
	for _, m := range r.cluster.Members() {
		if m.Name == from && m.Meta.PeerID != "" {
			r.enqueue(m, nil, []store.Key{k})
			return
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.early[from]
	if e == nil {
		if len(r.early) >= 64 {
			return // anti-entropy will catch up
		}
		e = &earlyNotices{first: time.Now()}
		r.early[from] = e
	}
	if len(e.keys) < 1024 && !slices.Contains(e.keys, k) {
		e.keys = append(e.keys, k)
	}
}

// retryEarly enqueues early notices whose senders are now known, and
// drops those older than 30 s (digest exchange covers them by then).
func (r *Replicator) retryEarly() {
	r.mu.Lock()
	if len(r.early) == 0 || r.cluster == nil {
		r.mu.Unlock()
		return
	}
	early := r.early
	r.early = map[string]*earlyNotices{}
	r.mu.Unlock()
	members := r.cluster.Members()
	for from, e := range early {
		i := slices.IndexFunc(members, func(m cluster.Member) bool { return m.Name == from && m.Meta.PeerID != "" })
		switch {
		case i >= 0:
			r.enqueue(members[i], nil, e.keys)
		case time.Since(e.first) < 30*time.Second:
			r.mu.Lock()
			r.early[from] = e
			r.mu.Unlock()
		}
	}
}

// enqueue adds buckets and keys to pull from m.
func (r *Replicator) enqueue(m cluster.Member, buckets []int, keys []store.Key) {
	if m.Meta.PeerID == "" || r.cluster == nil || m.Name == r.cluster.LocalName() {
		return
	}
	r.mu.Lock()
	p := r.pending[m.Meta.PeerID]
	if p == nil {
		p = &pull{}
		r.pending[m.Meta.PeerID] = p
	}
	p.member = m
	if len(buckets) > 0 {
		p.digestAt = r.cfg.Now()
	}
	for _, b := range buckets {
		if !slices.Contains(p.buckets, b) {
			p.buckets = append(p.buckets, b)
		}
	}
	for _, k := range keys {
		// Notices arrive once per pool a broker shares with the writer.
		if !slices.Contains(p.keys, k) {
			p.keys = append(p.keys, k)
		}
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// pullAll does the work pending for every peer.
func (r *Replicator) pullAll(ctx context.Context) {
	r.mu.Lock()
	work := r.pending
	r.pending = map[string]*pull{}
	r.mu.Unlock()
	for _, p := range work {
		if err := r.pullFrom(ctx, p); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("replication: pull failed", "from", p.member.Name, "err", err)
		}
	}
}

// pullTimeout bounds one pull from one peer.
const pullTimeout = 2 * time.Minute

// pullFrom fetches what p asks for and imports it. Once the buckets of a
// digest are fetched with nothing deferred, this broker holds all the
// peer held as of that digest (see Lag).
func (r *Replicator) pullFrom(ctx context.Context, p *pull) error {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	id, err := r.connect(ctx, p.member)
	if err != nil {
		return err
	}
	keys, deferred := p.keys, 0
	if len(p.buckets) > 0 {
		var rep reply
		if err := r.call(ctx, id, request{Op: "versions", Buckets: p.buckets}, &rep); err != nil {
			return err
		}
		keys = append(keys, r.store.Want(rep.Versions)...)
	}
	for len(keys) > 0 {
		n := min(len(keys), maxExportKeys)
		var rep reply
		if err := r.call(ctx, id, request{Op: "export", Keys: keys[:n]}, &rep); err != nil {
			return err
		}
		res, err := r.store.Import(rep.Records)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if res.Applied > 0 {
			r.cfg.Logger.Debug("replicated", "from", p.member.Name, "applied", res.Applied, "unchanged", res.Unchanged)
		}
		if res.Refused > 0 && r.warnRefused(p.member.Name) {
			r.cfg.Logger.Warn("replicated releases refused: a signature that does not verify, or a key past its last version (the store's log says which)",
				"from", p.member.Name, "refused", res.Refused)
		}
		deferred += len(res.Deferred)
		keys = keys[n:]
	}
	if !p.digestAt.IsZero() && deferred == 0 && r.tracks(p.member) {
		r.lag.synced(p.member.Name, p.digestAt)
	}
	return nil
}

// connect dials member m's bridge addresses.
func (r *Replicator) connect(ctx context.Context, m cluster.Member) (peer.ID, error) {
	ai, err := bridge.AddrInfo(wire.BrokerInfo{PeerID: m.Meta.PeerID, Addrs: m.Meta.Bridge})
	if err != nil {
		return "", err
	}
	if err := r.host.Connect(ctx, ai); err != nil {
		return "", fmt.Errorf("dial: %w", err)
	}
	return ai.ID, nil
}

func (r *Replicator) call(ctx context.Context, id peer.ID, req request, rep *reply) error {
	if err := bridge.Call(ctx, r.host, id, Proto, &req, rep, maxReplReply); err != nil {
		return err
	}
	if rep.Error != nil {
		return rep.Error
	}
	return nil
}

// warnRefused reports whether the releases a peer sent that this broker
// refused may be logged now: once an hour for each peer.
func (r *Replicator) warnRefused(peer string) bool {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.refusedWarned[peer]; ok && now.Sub(t) < time.Hour {
		return false
	}
	if r.refusedWarned == nil || len(r.refusedWarned) > 256 {
		r.refusedWarned = map[string]time.Time{}
	}
	r.refusedWarned[peer] = now
	return true
}
