package cluster

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// StateHook lets readiness replication ride on push/pull anti-entropy:
// every push/pull exchange (a join, and every PushPullInterval with a
// random live peer) carries LocalDigest's bytes to the peer, whose
// MergeDigest receives them. The digest travels in its own field of the
// exchange, next to (not inside) the presence tables. Both methods run on
// memberlist's goroutines, possibly concurrently, and should return
// quickly; a digest above 8 MiB is not sent (and logged).
type StateHook interface {
	// LocalDigest returns this broker's digest for a peer.
	LocalDigest() []byte
	// MergeDigest receives a peer's non-empty digest. from is the peer
	// as this broker knows it (State alive if it is not a member yet);
	// digest is the callee's to keep.
	MergeDigest(from Member, digest []byte)
}

// Cluster is this broker's membership in the broker cluster: who the other
// brokers are, and which broker holds which machine's bridge right now.
type Cluster struct {
	// Immutable after New.
	cfg     Config
	name    string
	profile Profile
	timing  timing
	mlConf  *memberlist.Config
	ml      *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue
	log     *slog.Logger
	now     func() time.Time
	addr    string        // advertised gossip address, "ip:port"
	noteTTL time.Duration // Config.NoteTTL or its default
	join    []string      // Config.Join without this broker's own address
	metaCh  chan struct{} // cap 1: metadata changed, push it
	wakeCh  chan struct{} // cap 1: presence changes to report
	noteCh  chan struct{} // cap 1: note changes to report
	resync  chan string   // addresses to push/pull with again (see memberAlive)
	inbox   chan inbound  // broadcasts waiting for their handler
	push    chan []byte   // news to push at once (see pushLoop)
	joined  chan struct{} // closed on the first successful join
	done    chan struct{} // closed once memberlist is shut down

	// Atomic, read and written without mu.
	leave atomic.Bool  // leave before shutting down
	alive atomic.Int32 // alive members, scales broadcast retransmits

	wg       sync.WaitGroup // the run goroutine
	stopOnce sync.Once      // guards stopErr: stop sets it once, Close reads it after
	stopErr  error

	// mu guards all following fields. It is a leaf lock: while holding it,
	// call nothing that takes another lock of this package or of
	// memberlist, except memberlist's broadcast queue, whose lock is taken
	// under ours and never the other way round.
	mu           sync.Mutex
	started      bool
	closed       bool
	cancel       context.CancelFunc
	meta         Meta   // this broker's metadata
	metaEnc      []byte // meta encoded, at most memberlist.MetaMaxSize
	metaDropped  int    // bridge addresses dropped from metaEnc
	members      map[string]*Member
	pres         *presence
	inc          uint64 // presence incarnation: fixed per start (see New)
	seq          uint64 // last presence sequence number used
	msgSeq       uint64 // last broadcast sequence number used
	onPresence   func(string, PresenceEntry)
	dirty        map[string]struct{}      // machines whose presence may have changed
	reported     map[string]PresenceEntry // what onPresence was last told, online only
	handlers     map[string]func(string, []byte)
	seen         map[string]*window   // origin → broadcast duplicate window
	strayed      map[string]time.Time // presence origins that are not members, since
	leaving      map[string]bool      // members that announced they are leaving
	regionWarned map[string]bool
	dropped      int // broadcasts dropped since last logged: inbox full
	notes        *notes
	noteVer      uint64 // last note version used (see notes)
	onNote       func(string)
	noteDirty    map[string]struct{} // machines whose note changed
	notesCut     int                 // notes the last push/pull state left out
	notesJoinAt  time.Time           // last sent notes in a join's push/pull (see memberAlive)
}

// New validates cfg, binds the gossip transport and starts memberlist,
// which from then on answers probes and accepts joins. It does not join
// anyone: Start does, in the background.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	t, _ := cfg.Profile.timing()
	c := &Cluster{
		cfg: cfg, name: cfg.Name, profile: cfg.Profile, timing: t,
		log: cfg.Logger, now: cfg.Now,
		metaCh: make(chan struct{}, 1), wakeCh: make(chan struct{}, 1), noteCh: make(chan struct{}, 1),
		inbox: make(chan inbound, 1024), push: make(chan []byte, maxPush), joined: make(chan struct{}), done: make(chan struct{}),
		members: map[string]*Member{}, pres: newPresence(),
		dirty: map[string]struct{}{}, reported: map[string]PresenceEntry{},
		handlers: map[string]func(string, []byte){}, seen: map[string]*window{},
		strayed: map[string]time.Time{}, regionWarned: map[string]bool{}, leaving: map[string]bool{},
		notes: newNotes(), noteDirty: map[string]struct{}{}, noteTTL: cfg.NoteTTL, resync: make(chan string, maxResync),
	}
	if c.noteTTL == 0 {
		c.noteTTL = DefaultNoteTTL
	}
	if c.profile == "" {
		c.profile = ProfileLAN
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.leave.Store(cfg.LeaveTimeout >= 0)
	c.alive.Store(1)
	c.inc = uint64(max(c.now().UnixNano(), 1))
	c.pres.table(c.name, c.inc, func(string) {})
	if err := c.setMeta(cfg.Meta); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := c.startMemberlist(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	// Gossiped once there is someone to tell; see notice.
	c.queue.QueueBroadcast(&namedBroadcast{name: noticeName(kindHello, c.name),
		msg: notice{kind: kindHello, origin: c.name, inc: c.inc}.encode()})
	return c, nil
}

// startMemberlist builds memberlist's configuration from the profile and
// creates it.
func (c *Cluster) startMemberlist() error {
	mc := c.timing.base()
	mc.Name = c.name
	mc.Label = gossipLabel
	mc.DeadNodeReclaimTime = mc.GossipToTheDeadTime
	mc.Logger = log.New(&mlLog{c: c, warned: map[string]time.Time{}}, "", 0)
	d := delegate{c}
	mc.Delegate, mc.Events, mc.Ping, mc.Conflict = d, d, d, d
	if keys := c.cfg.SecretKeys; len(keys) > 0 {
		kr, err := memberlist.NewKeyring(keys[1:], keys[0])
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		mc.Keyring = kr
	}
	c.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(c.alive.Load()) },
		RetransmitMult: mc.RetransmitMult,
	}

	tr := c.cfg.Transport
	if tr == nil {
		host, port, _ := splitIPPort(c.cfg.bindAddr(), true)
		nt, err := listen(host, port, mc.Logger)
		if err != nil {
			return err
		}
		tr = nt
	}
	if c.cfg.Advertise != "" {
		mc.AdvertiseAddr, mc.AdvertisePort, _ = splitIPPort(c.cfg.Advertise, false)
	}
	ip, port, err := tr.FinalAdvertiseAddr(mc.AdvertiseAddr, mc.AdvertisePort)
	if err != nil {
		tr.Shutdown()
		return fmt.Errorf("advertise address: %w", err)
	}
	c.addr = net.JoinHostPort(ip.String(), strconv.Itoa(port))
	for _, a := range c.cfg.Join {
		if a != c.addr {
			c.join = append(c.join, a)
		}
	}
	mc.Transport = tr
	c.mlConf = mc
	if mc.Keyring == nil && !ip.IsLoopback() {
		c.log.Warn("gossip is not encrypted: set a gossip key file on every broker", "addr", c.addr)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		tr.Shutdown()
		return err
	}
	c.ml = ml
	return nil
}

// listen opens memberlist's UDP+TCP transport on host:port. With port 0
// the kernel picks the TCP port and UDP must get the same one, which can
// collide; like memberlist, try a few times.
func listen(host string, port int, lg *log.Logger) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: lg}
	var err error
	for range 10 {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			return nt, nil
		}
		if port != 0 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("gossip listen on %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
}

// Start runs the cluster's background work until ctx ends or Close is
// called: joining Config.Join (retried with backoff until one answers),
// re-joining failed members so partitions heal, expiring state, pushing
// metadata changes, and calling OnPresence, OnNote and OnMessage
// handlers. When ctx ends the broker leaves and shuts down as with Close.
// Calling Start again does nothing; after Close it returns ErrClosed.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return fmt.Errorf("cluster: start: %w", ErrClosed)
	case c.started:
		return nil
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(1)
	go c.run(ctx)
	return nil
}

// run owns the worker goroutines and, when ctx ends, shuts down.
func (c *Cluster) run(ctx context.Context) {
	defer c.wg.Done()
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){c.joinLoop, c.reconnectLoop, c.housekeep, c.reportLoop, c.noteLoop, c.dispatchLoop, c.metaLoop, c.pushLoop} {
		wg.Go(func() { f(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	c.stop()
}

// Close leaves the cluster (see Config.LeaveTimeout) and stops
// everything Start and New started. It is safe to call more than once and
// returns the first call's result.
func (c *Cluster) Close() error {
	c.mu.Lock()
	c.closed = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		c.wg.Wait()
	}
	c.stop()
	return c.stopErr
}

// stop shuts memberlist down, once. The order matters: the workers have
// stopped already (run waits for them), so nothing calls into memberlist
// concurrently, and memberlist panics on Leave after Shutdown. Leave goes
// first, while the transport still works, so peers hear it; Shutdown then
// closes the transport before memberlist's own goroutines (see its
// comment).
func (c *Cluster) stop() {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		if c.leave.Load() {
			timeout := c.cfg.LeaveTimeout
			if timeout == 0 {
				timeout = 3 * time.Second
			}
			// Half for the announcement, half for memberlist's own
			// leave message.
			c.announceLeave(timeout / 2)
			if err := c.ml.Leave(timeout / 2); err != nil {
				c.stopErr = fmt.Errorf("cluster: leave: %w", err)
			}
		}
		if err := c.ml.Shutdown(); err != nil && c.stopErr == nil {
			c.stopErr = fmt.Errorf("cluster: shutdown: %w", err)
		}
		close(c.done)
	})
}

// announceLeave gossips that this broker is leaving, so peers record
// "left" rather than "dead", and waits until the message has been sent
// its full number of times, or timeout.
func (c *Cluster) announceLeave(timeout time.Duration) {
	c.mu.Lock()
	msg := notice{kind: kindLeave, origin: c.name, inc: c.inc}.encode()
	c.mu.Unlock()
	done := make(chan struct{})
	c.queue.QueueBroadcast(&namedBroadcast{name: noticeName(kindLeave, c.name), msg: msg, done: done})
	if c.alive.Load() <= 1 {
		return // nobody to tell
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.log.Debug("leave announcement not fully gossiped before the timeout")
	}
}

// LocalName returns this broker's node name.
func (c *Cluster) LocalName() string { return c.name }

// LocalAddr returns the gossip address other brokers join this one at,
// "ip:port", with the port the kernel picked if BindAddr had port 0.
func (c *Cluster) LocalAddr() string { return c.addr }

// Joined is closed once this broker has joined a peer from Config.Join, or
// at Start when Join is empty.
func (c *Cluster) Joined() <-chan struct{} { return c.joined }

// UpdateMeta replaces this broker's metadata and gossips it. It returns at
// once; updates are coalesced and pushed at most once per metadata
// interval (LAN 1 s), each re-gossiping the whole 512-byte record, so the
// counts in Meta are coarse by design. Bridge addresses that do not fit
// are dropped and logged (Meta.BridgeTruncated); metadata that does not
// fit without them is refused with ErrTooLarge.
func (c *Cluster) UpdateMeta(m Meta) error {
	if err := c.setMeta(m); err != nil {
		return fmt.Errorf("cluster: update meta: %w", err)
	}
	select {
	case c.metaCh <- struct{}{}:
	default:
	}
	return nil
}

// setMeta encodes m with Config's defaults and makes it current.
func (c *Cluster) setMeta(m Meta) error {
	if m.Name == "" {
		m.Name = c.name
	}
	if m.Region == "" {
		m.Region = c.cfg.Region
	}
	m.BridgeTruncated = false
	enc, dropped, err := encodeMeta(m)
	if err != nil {
		return err
	}
	if c.cfg.testOnlyLegacy {
		enc[1] &^= metaFlagNotes
	}
	if dropped > 0 {
		m.Bridge, m.BridgeTruncated = m.Bridge[:len(m.Bridge)-dropped], true
	}
	c.mu.Lock()
	changed := dropped != c.metaDropped
	c.meta, c.metaEnc, c.metaDropped = m, enc, dropped
	if self := c.members[c.name]; self != nil {
		self.Meta, self.Region = m, m.Region
	}
	c.mu.Unlock()
	if changed && dropped > 0 {
		c.log.Warn("bridge addresses dropped from gossip metadata: over memberlist's 512-byte limit; peers fetch them over HTTP",
			"kept", len(m.Bridge), "dropped", dropped)
	}
	return nil
}
