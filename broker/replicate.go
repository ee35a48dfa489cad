package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// Readiness replication. Every broker holds every record. Two paths carry
// them, both pulling full records over an authenticated libp2p stream
// between brokers (ProtoReplicate), never inside gossip packets:
//
//   - anti-entropy: each push/pull exchange of the gossip carries the
//     store's digest (256 bucket hashes, 3 KB); a broker whose buckets
//     differ asks the peer for the versions in those buckets, works out
//     which records are newer there, and fetches them. This is what a
//     broker joining with an empty disk catches up through.
//   - notices: after a local write the broker gossips the record's key
//     (topic "rec"); the others fetch it from the writer at once, so an
//     enrolment or a check-in is on every broker within a gossip round
//     instead of a push/pull interval.
//
// The store decides what is newer (see package store): check-in sequence
// for machines, a hybrid logical clock for control records.

// ProtoReplicate is the broker-to-broker record stream. Only brokers that
// are members of the cluster may open it.
const ProtoReplicate protocol.ID = "/readymesh/replicate/1.0.0"

const (
	noticeTopic   = "rec"
	maxExportKeys = 500      // records per export request
	maxReplReply  = 64 << 20 // bytes per reply
)

type replRequest struct {
	Op      string         `json:"op"` // "versions", "export" or "push"
	Buckets []int          `json:"buckets,omitempty"`
	Keys    []store.Key    `json:"keys,omitempty"`
	Records []store.Record `json:"records,omitempty"` // push
}

type replReply struct {
	Error    *wire.Error     `json:"error,omitempty"`
	Versions []store.Version `json:"versions,omitempty"`
	Records  []store.Record  `json:"records,omitempty"`
}

// replicator runs the pulls. Work arrives from memberlist's goroutines
// (digests) and from gossip notices; one goroutine, owned by Run, does it.
type replicator struct {
	b *Broker

	mu      sync.Mutex
	pending map[string]*pull // mu guards; peer ID → work for that peer
	// early holds notices from brokers this one does not know yet (or
	// whose metadata has not arrived): a notice may outrun the gossip of
	// its sender's join. They are retried until the sender is known.
	early map[string]*earlyNotices
	wake  chan struct{}
}

type earlyNotices struct {
	keys  []store.Key
	first time.Time
}

// pull is what to fetch from one peer.
type pull struct {
	member  cluster.Member
	buckets []int
	keys    []store.Key
}

func newReplicator(b *Broker) *replicator {
	return &replicator{b: b, pending: map[string]*pull{}, early: map[string]*earlyNotices{}, wake: make(chan struct{}, 1)}
}

var _ cluster.StateHook = (*replicator)(nil)

// LocalDigest implements cluster.StateHook.
func (r *replicator) LocalDigest() []byte {
	raw, err := r.b.store.Digest().MarshalBinary()
	if err != nil {
		r.b.log.Warn("replication: digest", "err", err)
		return nil
	}
	return raw
}

// MergeDigest implements cluster.StateHook.
func (r *replicator) MergeDigest(from cluster.Member, digest []byte) {
	var d store.Digest
	if err := d.UnmarshalBinary(digest); err != nil {
		r.b.log.Warn("replication: bad digest", "from", from.Name, "err", err)
		return
	}
	if diff := r.b.store.DiffBuckets(d); len(diff) > 0 {
		r.enqueue(from, diff, nil)
	}
}

// notice handles a gossiped key: fetch it from the broker that wrote it.
func (r *replicator) notice(from string, payload []byte) {
	var k store.Key
	if err := json.Unmarshal(payload, &k); err != nil || k.ID == "" {
		return
	}
	for _, m := range r.b.cluster.Members() {
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
func (r *replicator) retryEarly() {
	r.mu.Lock()
	if len(r.early) == 0 {
		r.mu.Unlock()
		return
	}
	early := r.early
	r.early = map[string]*earlyNotices{}
	r.mu.Unlock()
	members := r.b.cluster.Members()
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

func (r *replicator) enqueue(m cluster.Member, buckets []int, keys []store.Key) {
	if m.Meta.PeerID == "" || m.Name == r.b.cluster.LocalName() {
		return
	}
	r.mu.Lock()
	p := r.pending[m.Meta.PeerID]
	if p == nil {
		p = &pull{}
		r.pending[m.Meta.PeerID] = p
	}
	p.member = m
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

// run does the pulls until ctx is done.
func (r *replicator) run(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-tick.C:
			r.retryEarly()
			continue
		}
		r.mu.Lock()
		work := r.pending
		r.pending = map[string]*pull{}
		r.mu.Unlock()
		for _, p := range work {
			if err := r.pullFrom(ctx, p); err != nil && ctx.Err() == nil {
				r.b.log.Warn("replication: pull failed", "from", p.member.Name, "err", err)
			}
		}
	}
}

// pullFrom fetches what p asks for and imports it.
func (r *replicator) pullFrom(ctx context.Context, p *pull) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	id, err := peer.Decode(p.member.Meta.PeerID)
	if err != nil {
		return err
	}
	ai, err := bridge.AddrInfo(wire.BrokerInfo{PeerID: p.member.Meta.PeerID, Addrs: p.member.Meta.Bridge})
	if err != nil {
		return err
	}
	if err := r.b.host.Connect(ctx, ai); err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	keys := p.keys
	if len(p.buckets) > 0 {
		var reply replReply
		if err := r.call(ctx, id, replRequest{Op: "versions", Buckets: p.buckets}, &reply); err != nil {
			return err
		}
		keys = append(keys, r.b.store.Want(reply.Versions)...)
	}
	for len(keys) > 0 {
		n := min(len(keys), maxExportKeys)
		var reply replReply
		if err := r.call(ctx, id, replRequest{Op: "export", Keys: keys[:n]}, &reply); err != nil {
			return err
		}
		res, err := r.b.store.Import(reply.Records)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if res.Applied > 0 {
			r.b.log.Debug("replicated", "from", p.member.Name, "applied", res.Applied, "unchanged", res.Unchanged)
		}
		keys = keys[n:]
	}
	return nil
}

func (r *replicator) call(ctx context.Context, id peer.ID, req replRequest, reply *replReply) error {
	if err := bridge.Call(ctx, r.b.host, id, ProtoReplicate, &req, reply, maxReplReply); err != nil {
		return err
	}
	if reply.Error != nil {
		return reply.Error
	}
	return nil
}

// handleReplicate serves another broker's pull. Only members of the
// cluster are answered: the stream is authenticated by the peer's key.
func (b *Broker) handleReplicate(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer().String()
	s.SetDeadline(time.Now().Add(2 * time.Minute))
	if b.cluster == nil || !b.isMember(remote) {
		b.refuse(s, "replicate", remote, wire.CodeForbidden, "not a broker of this cluster", &replReply{})
		return
	}
	var req replRequest
	if err := wire.NewReader(s).Read(maxReplReply, &req); err != nil {
		b.refuse(s, "replicate", remote, readCode(err), err.Error(), &replReply{})
		return
	}
	var reply replReply
	switch req.Op {
	case "versions":
		for _, bk := range req.Buckets {
			if bk < 0 || bk >= store.DigestBuckets {
				b.refuse(s, "replicate", remote, wire.CodeBadRequest, "bucket out of range", &replReply{})
				return
			}
			reply.Versions = append(reply.Versions, b.store.BucketVersions(bk)...)
		}
	case "push":
		if _, err := b.store.Import(req.Records); err != nil {
			b.refuse(s, "replicate", remote, wire.CodeBadRequest, err.Error(), &replReply{})
			return
		}
	case "export":
		if len(req.Keys) > maxExportKeys {
			b.refuse(s, "replicate", remote, wire.CodeTooLarge, "too many keys", &replReply{})
			return
		}
		recs, err := b.store.Export(req.Keys)
		if err != nil {
			b.refuse(s, "replicate", remote, wire.CodeInternal, err.Error(), &replReply{})
			return
		}
		reply.Records = recs
	default:
		b.refuse(s, "replicate", remote, wire.CodeBadRequest, "unknown op "+req.Op, &replReply{})
		return
	}
	wire.Write(s, &reply)
}

// isMember reports whether a peer ID is a broker of the cluster.
func (b *Broker) isMember(peerID string) bool {
	for _, m := range b.cluster.Members() {
		if m.Meta.PeerID == peerID {
			return true
		}
	}
	return false
}

// replicated gossips the keys of records written here, so the other
// brokers fetch them now rather than at the next anti-entropy round.
func (b *Broker) replicated(keys ...store.Key) {
	if b.cluster == nil {
		return
	}
	for _, k := range keys {
		raw, _ := json.Marshal(k)
		if err := b.cluster.Broadcast(noticeTopic, raw); err != nil {
			b.log.Debug("replication notice", "key", k, "err", err)
		}
	}
}

// copyToPeer pushes records just written here to one other live broker,
// preferring this broker's region, and returns once that broker has
// committed them. Check-ins and enrolments are acknowledged only after
// this, so losing the broker an agent talked to loses no acknowledged
// data: another broker already holds it. When no other broker is alive, or
// none answers within the timeout, the write stays acknowledged on this
// broker alone (logged): availability over a second copy.
func (b *Broker) copyToPeer(ctx context.Context, keys ...store.Key) {
	if b.cluster == nil {
		return
	}
	peers := b.copyTargets()
	if len(peers) == 0 {
		return
	}
	recs, err := b.store.Export(keys)
	if err != nil {
		b.log.Warn("replication: export for copy", "err", err)
		return
	}
	for _, m := range peers[:min(2, len(peers))] {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := b.pushTo(cctx, m, recs)
		cancel()
		if err == nil {
			return
		}
		b.log.Warn("replication: copy to peer failed", "peer", m.Name, "err", err)
	}
	b.log.Warn("acknowledged with no second copy: no other broker took it", "keys", len(keys))
}

// copyTargets lists the other live brokers, this broker's region first,
// starting at a rotating offset so copies spread across the cluster.
func (b *Broker) copyTargets() []cluster.Member {
	var same, other []cluster.Member
	for _, m := range b.cluster.Members() {
		if m.Name == b.cluster.LocalName() || m.State != cluster.StateAlive || m.Meta.PeerID == "" || len(m.Meta.Bridge) == 0 {
			continue
		}
		if m.Region == b.cfg.Region {
			same = append(same, m)
		} else {
			other = append(other, m)
		}
	}
	rotate := func(ms []cluster.Member) {
		if len(ms) > 1 {
			n := int(b.copies.Add(1)) % len(ms)
			slices.Reverse(ms[:n])
			slices.Reverse(ms[n:])
			slices.Reverse(ms)
		}
	}
	rotate(same)
	rotate(other)
	return append(same, other...)
}

func (b *Broker) pushTo(ctx context.Context, m cluster.Member, recs []store.Record) error {
	ai, err := bridge.AddrInfo(wire.BrokerInfo{PeerID: m.Meta.PeerID, Addrs: m.Meta.Bridge})
	if err != nil {
		return err
	}
	if err := b.host.Connect(ctx, ai); err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	var reply replReply
	return b.repl.call(ctx, ai.ID, replRequest{Op: "push", Records: recs}, &reply)
}
