package releases

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Defaults of Config's zero values.
const (
	DefaultMaxDownloads = 32
	DefaultMaxPerBroker = 4
	DefaultQueueWait    = time.Minute
	DefaultIdle         = 30 * time.Second
	DefaultOrphanAge    = 24 * time.Hour
	DefaultWithdrawnAge = 30 * 24 * time.Hour
	DefaultSweepEvery   = time.Hour
	DefaultMinPullRate  = 256 << 10
	DefaultRateWindow   = 10 * time.Second
	DefaultAskTimeout   = 10 * time.Second
)

// Config configures the room. Zero values mean the defaults given.
type Config struct {
	// MaxDownloads bounds the blob downloads this broker serves at once,
	// to agents and brokers together; more wait their turn. Each holds a
	// 256 KiB buffer and a share of the disk's reads: more serve a large
	// fleet's first minutes faster, fewer keep the broker's other work
	// (check-ins) quicker meanwhile. Zero means 32.
	MaxDownloads int
	// MaxPerBroker bounds the downloads one other broker takes from this
	// one at once. Zero means 4.
	MaxPerBroker int
	// QueueWait bounds how long a download waits for its turn before it
	// is refused as unavailable (the agent retries later). Zero means
	// 1 minute.
	QueueWait time.Duration
	// Idle bounds the time each chunk (1 MiB) of a transfer may take, in
	// either direction: a peer slower than that (35 KB/s at the default)
	// is cut off, so a stalled peer holds a download slot or an upload
	// for this long at most. Transfers resume where they stopped. Zero
	// means 30 s.
	Idle time.Duration
	// AskTimeout bounds the question a pull asks each other broker
	// (which holds the blob whole?), from the dial to the answer. The
	// brokers are asked at once, and the pull starts with the first
	// answer "whole": a broker that does not answer delays only a pull
	// that finds no source. Zero means 10 s.
	AskTimeout time.Duration
	// MinPullRate is the slowest, in bytes per second, a pull from
	// another broker may go while another broker that holds the blob is
	// known: a source that sends less in a PullRateWindow (after a first
	// window of grace) is left for that one, and the pull resumes there
	// at what the store holds. With no other source the slow one is kept,
	// and logged. Higher frees the agents waiting on a pull sooner from a
	// congested broker, at the cost of leaving sources that only
	// stumbled. Zero means 256 KiB/s; negative means no floor (Idle
	// alone bounds a pull).
	MinPullRate int64
	// PullRateWindow is the window MinPullRate is measured over, and the
	// grace a source has at the start of its pull. Zero means 10 s.
	PullRateWindow time.Duration
	// OrphanAge is how long a blob no live release names is kept after
	// its last use (an upload never published, a pull of a release since
	// withdrawn). Zero means 24 h.
	OrphanAge time.Duration
	// WithdrawnAge is how long after a withdrawal the release's blobs are
	// kept, for a rollback or an inquiry. Zero means 30 days.
	WithdrawnAge time.Duration
	// SweepEvery is how often Run deletes the blobs past their age. Zero
	// means 1 h.
	SweepEvery time.Duration
	// Logger receives the room's logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Metrics, if not nil, receives readymesh_release_blob_bytes_total
	// and the download gauges.
	Metrics prometheus.Registerer
}

func (c *Config) setDefaults() {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.QueueWait, DefaultQueueWait}, {&c.Idle, DefaultIdle}, {&c.OrphanAge, DefaultOrphanAge},
		{&c.WithdrawnAge, DefaultWithdrawnAge}, {&c.SweepEvery, DefaultSweepEvery},
		{&c.PullRateWindow, DefaultRateWindow}, {&c.AskTimeout, DefaultAskTimeout}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.MaxDownloads <= 0 {
		c.MaxDownloads = DefaultMaxDownloads
	}
	if c.MinPullRate == 0 {
		c.MinPullRate = DefaultMinPullRate
	}
	if c.MaxPerBroker <= 0 {
		c.MaxPerBroker = DefaultMaxPerBroker
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Blobs is the blob store, as the room uses it (package store's blobs).
type Blobs interface {
	BlobHave(sha string) (store.BlobMeta, bool)
	WriteBlobChunk(sha string, size, offset int64, data []byte, now time.Time) (store.BlobMeta, error)
	ReadBlobAt(sha string, p []byte, offset int64) (int, error)
	TouchBlob(sha string, now time.Time) error
	DeleteBlob(sha string) error
	SweepBlobs(cutoff time.Time, keep func(sha string) bool) ([]string, error)
}

// Records is the replicated release records, as the room uses them.
type Records interface {
	PublishRelease(rec store.ReleaseRecord, binaries []wire.ReleaseBinary, next *store.ReleaseKeyRecord) ([]store.Key, error)
	WithdrawRelease(version, by string, now time.Time) (store.ReleaseRecord, error)
	Release(version string) (store.ReleaseRecord, bool, error)
	Releases() ([]store.ReleaseRecord, error)
	SetReleaseKey(rec store.ReleaseKeyRecord) error
	ReleaseKey() (store.ReleaseKeyRecord, bool)
}

// Cluster is the other brokers, as the room needs them.
type Cluster interface {
	// IsMember reports whether a peer ID is a broker of the cluster.
	IsMember(peerID string) bool
	// Brokers returns the other brokers that are alive, to pull blobs
	// from; none when the broker runs alone.
	Brokers() []peer.AddrInfo
}

// Keys says who an authenticated key is, other than a broker.
type Keys interface {
	// Machine returns nil for an enrolled machine, else the refusal.
	Machine(remote peer.ID) error
	// Technician returns the technician the key logs in as, else the
	// refusal.
	Technician(remote peer.ID) (wire.Technician, error)
}

// Dialer opens streams to other brokers (a libp2p host).
type Dialer interface {
	Connect(ctx context.Context, pi peer.AddrInfo) error
	NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error)
}

// Audit records what admins did.
type Audit interface{ Add(wire.AuditEntry) }

// Replication announces records written here.
type Replication interface{ Written(keys ...store.Key) }

// Deps is what the room is given. None may be nil.
type Deps struct {
	Blobs       Blobs
	Records     Records
	Cluster     Cluster
	Keys        Keys
	Host        Dialer
	Audit       Audit
	Replication Replication
}

// Room serves releases. Its methods are safe for concurrent use.
type Room struct {
	// Immutable after New.
	cfg     Config
	log     *slog.Logger
	deps    Deps
	metrics metrics
	slots   chan struct{} // one per download served at once
	ctx     context.Context
	cancel  context.CancelFunc

	catalog catalog
	pulls   pulls
	sweeper sweeper

	// mu guards all following fields: who transfers now. Keys are
	// authenticated peers admitted before their request was read.
	mu        sync.Mutex
	uploads   map[peer.ID]*upload
	agents    map[peer.ID]network.Stream // an agent's running download
	perBroker map[peer.ID]chan struct{}  // a broker's download slots

	wg sync.WaitGroup // pulls
}

// New returns the room. Run sweeps old blobs; Close (or the end of Run)
// stops the pulls.
func New(cfg Config, deps Deps) *Room {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Room{cfg: cfg, log: cfg.Logger, deps: deps, metrics: newMetrics(cfg.Metrics),
		slots: make(chan struct{}, cfg.MaxDownloads), ctx: ctx, cancel: cancel,
		uploads: map[peer.ID]*upload{}, agents: map[peer.ID]network.Stream{}, perBroker: map[peer.ID]chan struct{}{}}
	r.catalog.records, r.catalog.now = deps.Records, cfg.Now
	r.pulls.m = map[string]*pull{}
	return r
}

// Run sweeps blobs past their age every Config.SweepEvery until ctx
// ends, then stops the pulls (Close).
func (r *Room) Run(ctx context.Context) {
	defer r.Close()
	tk := time.NewTicker(r.cfg.SweepEvery)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			r.Sweep()
		}
	}
}

// Close stops the pulls in progress and waits for them. Downloads that
// wait on a pull fail (their agents resume later). It is safe to call
// more than once.
func (r *Room) Close() {
	r.cancel()
	// A pull starts only under pulls.mu and while ctx is live: once the
	// lock is passed, no pull is added to wg.
	r.pulls.mu.Lock()
	r.pulls.mu.Unlock()
	r.wg.Wait()
}
