// Package replicate keeps every broker's store holding every record:
// readiness, enrolments, technicians, tokens and jobs. Two paths carry
// records, both pulling full records over an authenticated libp2p stream
// between brokers (Proto), never inside gossip packets:
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
// Check-ins and enrolments are also copied to one other alive broker before
// they are acknowledged (CopyToPeer), so losing the broker an agent talked
// to loses no acknowledged data.
//
// The store decides what is newer (see package store): check-in sequence
// for machines, a hybrid logical clock for control records.
package replicate

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Proto is the broker-to-broker record stream. Only brokers that are
// members of the cluster may open it.
const Proto protocol.ID = "/readymesh/replicate/1.0.0"

// NoticeTopic is the gossip topic of replication notices.
const NoticeTopic = "rec"

const (
	maxExportKeys = 500      // records per export request
	maxReplReply  = 64 << 20 // bytes per reply
)

// MaxRequest bounds a replication request (a push carries records) in
// bytes.
const MaxRequest = maxReplReply

type request struct {
	Op      string         `json:"op"` // "versions", "export" or "push"
	Buckets []int          `json:"buckets,omitempty"`
	Keys    []store.Key    `json:"keys,omitempty"`
	Records []store.Record `json:"records,omitempty"` // push
}

type reply struct {
	Error    *wire.Error     `json:"error,omitempty"`
	Versions []store.Version `json:"versions,omitempty"`
	Records  []store.Record  `json:"records,omitempty"`
}

// SetError implements wire.Refusable.
func (r *reply) SetError(e *wire.Error) { r.Error = e }

// Cluster is the gossip, as replication needs it.
type Cluster interface {
	Members() []cluster.Member
	LocalName() string
	Broadcast(topic string, payload []byte) error
}

// Config configures replication.
type Config struct {
	// Region is this broker's region: second copies go to a broker of the
	// same region first.
	Region string
	// Logger receives the logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time, by which the replication lag is
	// measured (see Lag). Nil means time.Now.
	Now func() time.Time
}

// Replicator runs the pulls. Work arrives from memberlist's goroutines
// (digests) and from gossip notices; one goroutine, Run, does it.
type Replicator struct {
	cfg     Config
	store   *store.Store
	host    host.Host
	cluster Cluster       // set once by Join, before the cluster starts
	copies  atomic.Uint64 // rotates the peer that gets second copies
	wake    chan struct{}
	lag     lagTable // when this broker last held all each peer held
	// refusedWarned is when each peer's refused releases were last
	// logged: a peer offers them again at every exchange. Keyed by
	// cluster member name (bounded by the cluster), guarded by mu.
	refusedWarned map[string]time.Time

	mu      sync.Mutex
	pending map[string]*pull // mu guards all following fields; peer ID → work for that peer
	// early holds notices from brokers this one does not know yet (or
	// whose metadata has not arrived): a notice may outrun the gossip of
	// its sender's join. They are retried until the sender is known.
	early map[string]*earlyNotices
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
	// digestAt is when the latest digest whose differing buckets this
	// pull fetches arrived; zero when it fetches notices only.
	digestAt time.Time
}

// New returns a Replicator for st, talking to other brokers through h.
// Join gives it the cluster.
func New(cfg Config, st *store.Store, h host.Host) *Replicator {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Replicator{cfg: cfg, store: st, host: h, pending: map[string]*pull{},
		early: map[string]*earlyNotices{}, wake: make(chan struct{}, 1)}
}

// Join connects the cluster, whose state hook the Replicator is (the two
// are made with each other). It must be called once, before the cluster
// starts; a Replicator never joined does nothing (the broker runs alone).
func (r *Replicator) Join(c Cluster) { r.cluster = c }

// IsMember reports whether a peer ID is a broker of the cluster.
func (r *Replicator) IsMember(peerID string) bool {
	if r.cluster == nil {
		return false
	}
	for _, m := range r.cluster.Members() {
		if m.Meta.PeerID == peerID {
			return true
		}
	}
	return false
}

// Run does the pulls until ctx ends, and once a day drops tombstones past
// the store's retention.
func (r *Replicator) Run(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	purged := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			r.pullAll(ctx)
		case <-tick.C:
			r.retryEarly()
			if time.Since(purged) > 24*time.Hour {
				r.purge()
				purged = time.Now()
			}
		}
	}
}

// purge drops tombstones past the store's retention.
func (r *Replicator) purge() {
	if n, err := r.store.PurgeTombstones(); err != nil {
		r.cfg.Logger.Warn("purging tombstones", "err", err)
	} else if n > 0 {
		r.cfg.Logger.Info("purged tombstones", "records", n)
	}
}
