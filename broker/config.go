package broker

import (
	"log/slog"
	"net"
	"time"

	"github.com/pion/transport/v5"

	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/readiness"
)

// Config configures a Broker. The zero value of each field means its
// documented default; DefaultConfig and TestConfig are presets.
type Config struct {
	// DataDir holds the key, the store, broker.json and admin.credential.
	// It must not be empty; it is created with mode 0700.
	DataDir string
	// Name is the broker's name as shown on machine cards. Empty means the
	// host name.
	Name string
	// Region is the broker's region label. Empty means "default".
	Region string
	// Listen lists bridge listen addresses, multiaddrs or host:port (see
	// bridge.ListenAddrs). Nil means 0.0.0.0:7400: QUIC on UDP 7400, TCP
	// on 7400 and WebSocket on 7401.
	Listen []string
	// HTTP is the health and metrics listen address. Empty means
	// 127.0.0.1:7480; "off" disables it.
	HTTP string
	// Net is the network the broker's UDP sockets come from: the bridge's
	// QUIC and the STUN/TURN port. Nil means the host's network. A pion
	// vnet (tests) carries UDP only, so the bridge then runs QUIC alone
	// (see bridge.HostConfig.Net), and HTTP is served only on
	// HTTPListener. Gossip (memberlist) always uses the host's network.
	Net transport.Net
	// HTTPListener, if not nil, is the listener health, metrics and the
	// web console are served on, in place of listening on HTTP. The
	// broker closes it.
	HTTPListener net.Listener
	// ConsoleURL is the web console's address as technicians' browsers
	// reach it (behind a TLS proxy, say), used in the sign-in links of
	// meshctl console. Empty means http:// and the HTTP address, with
	// 127.0.0.1 for an unspecified one.
	ConsoleURL string

	// HTTP server limits. The HTTP port admits callers before they sign
	// in, so each of these bounds what a stranger can hold: a file
	// descriptor, a goroutine, a buffer. Zero means the default given.
	//
	// HTTPReadHeaderTimeout bounds reading a request's headers. Zero
	// means 5 s.
	HTTPReadHeaderTimeout time.Duration
	// HTTPReadTimeout bounds reading a whole request, body included,
	// from its first byte. Bodies here are small (a sign-in code, a
	// WebRTC offer), so a request still arriving after it is a slow
	// client or an attack; its connection is closed. net/http lifts it
	// once the body is read, so handlers that wait long on purpose (the
	// console's event stream, a session request waiting for consent) are
	// not cut by it. Zero means 20 s.
	HTTPReadTimeout time.Duration
	// HTTPWriteTimeout bounds writing a response, from the request's
	// start; handlers that wait long reset it before they write, and the
	// console's event stream bounds each event instead. Zero means 30 s.
	HTTPWriteTimeout time.Duration
	// HTTPIdleTimeout is how long a keep-alive connection may wait for
	// its next request. Longer saves browsers a reconnect; shorter frees
	// idle connections' descriptors sooner. Zero means 60 s.
	HTTPIdleTimeout time.Duration
	// HTTPMaxHeaderBytes bounds a request's header bytes (the request
	// line included). Zero means 32 KiB.
	HTTPMaxHeaderBytes int
	// HTTPMaxConns bounds the HTTP connections open at once; more are
	// closed as they are accepted. Keep it above the console's event
	// streams (at most 2,000), or they crowd out every other request.
	// Zero means 4096.
	HTTPMaxConns int
	// HTTPMaxConnsPerIP bounds the HTTP connections open at once from
	// one client address (an IPv6 /64). A browser holds up to 6, plus
	// its console streams; an office behind one NAT holds that per
	// technician. Behind a TLS proxy every connection comes from the
	// proxy: set it to HTTPMaxConns there. Zero means 256.
	HTTPMaxConnsPerIP int

	// Gossip is the "ip:port" this broker gossips with other brokers on
	// (UDP and TCP), port 0 allowed. Empty means the broker runs alone,
	// without a cluster.
	Gossip string
	// Join lists gossip addresses of brokers to join. Brokers may start in
	// any order: joining is retried in the background.
	Join []string
	// GossipKeys encrypt and authenticate gossip (see cluster.LoadKeyFile).
	// They are required to join a cluster and whenever Gossip is not a
	// loopback address: a broker with another key cannot join.
	GossipKeys [][]byte
	// GossipProfile is the timing of the Gossip pool: "lan" (the default)
	// for the brokers of one region, "wan" for a single pool across
	// regions, "local" for tests. See cluster.Profile.
	GossipProfile string
	// WANGossip, if set, is the "ip:port" of a second pool that every
	// broker of every region joins (WANJoin), with WAN timing, while the
	// Gossip pool holds only this region's brokers with LAN timing. See
	// pools. Empty means one pool.
	WANGossip string
	// WANJoin lists WAN-pool addresses of brokers to join.
	WANJoin []string
	// WANProfile is the WAN pool's timing. Empty means "wan".
	WANProfile string

	// Heartbeat is the interval agents are told to send heartbeats at.
	// Shorter intervals notice a silent loss sooner and cost one small
	// message per agent per interval. Zero means 5 s.
	Heartbeat time.Duration
	// MissedHeartbeats is how many intervals without a heartbeat mark a
	// machine offline. Zero means 3.
	MissedHeartbeats int
	// LastSeenFlush is how often the last-seen times of online machines are
	// written to the store (a machine going offline is written at once).
	// Shorter keeps last_seen fresher after a broker crash; but every write
	// changes the machine's replicated record, which the other brokers then
	// fetch whole (snapshot included), so in a cluster each flush costs a
	// few KB per online machine per peer. Zero means 10 minutes.
	LastSeenFlush time.Duration

	// MaxSnapshot bounds an encoded check-in in bytes. Larger ones are
	// refused unread. Zero means 1 MiB.
	MaxSnapshot int
	// HistoryLimit is how many check-in summaries are kept per machine.
	// Zero means 100.
	HistoryLimit int
	// MaxBridges is how many peer connections the broker admits. Zero
	// means 20000.
	MaxBridges int
	// CheckInMemory bounds the bytes of check-ins the broker reads at
	// once, from all agents; one agent may have two in flight. A check-in
	// that would exceed it is refused ("unavailable") and the agent
	// retries. Zero means 64 MiB: 64 full-size snapshots at a time.
	CheckInMemory int64
	// TranscriptMemory bounds the bytes of session transcripts the broker
	// reads at once, from all agents; one agent may file one at a time.
	// Zero means 64 MiB: two full-size (16 MiB) transcripts at a time, as
	// transcripts are rare and may wait.
	TranscriptMemory int64
	// AcceptRate bounds the new bridges admitted per second, from all
	// addresses together (each address also has bridge.PerIPConnRate).
	// After a broker restart every agent comes back at once: spreading
	// them keeps the broker answering technicians and live sessions,
	// while refused agents retry after a jittered backoff. Zero means
	// 500 a second: 5,000 agents back within about 10 s.
	AcceptRate float64
	// MaxHandshakes bounds the bridges in their handshake at once. Zero
	// means 256.
	MaxHandshakes int
	// Readiness holds the readiness rules' thresholds.
	Readiness readiness.Policy

	// STUN is the UDP address of the broker's STUN server, which tells
	// agents and technicians the address their session sockets are seen
	// from. "off" disables it (no server-reflexive candidates: sessions
	// between NATed peers then use the relay). Empty means ":3478".
	STUN string
	// TURNIP is the address TURN relay candidates carry: the address
	// peers reach this broker at. Empty means the STUN address's IP when it
	// is specific; with neither, WebRTC sessions get no TURN relay.
	TURNIP string
	// BusyLoad is the load per core at or above which a machine in a
	// session shows busy. Zero means 0.9.
	BusyLoad float64
	// AlertEvery is how often alerts are evaluated. Zero means 30 s.
	AlertEvery time.Duration
	// AlertOffline opens a reachability alert for a machine lost
	// (offline with no notice, or for a reason no broker knows) longer
	// than this. Zero means 15 minutes.
	AlertOffline time.Duration
	// AlertAway holds the offline alert's thresholds for machines that
	// said why they went. Zero fields mean the defaults: stopped 1 h,
	// shutdown 24 h, asleep and quiet never; alerts.Never means never.
	AlertAway alerts.Away
	// AlertOverdueIntervals opens a readiness alert for a machine with no
	// check-in for this many of its check-in intervals. Zero means 3.
	AlertOverdueIntervals int
	// AlertNeverCheckedIn opens a readiness alert for a machine enrolled
	// this long ago that never checked in. Zero means 1 hour.
	AlertNeverCheckedIn time.Duration
	// AlertWebhook, if set, receives every alert change as a JSON POST
	// (wire.AlertEvent), retried with backoff.
	AlertWebhook string
	// GrantTTL is how long a session grant is valid: the technician must
	// connect within it. Short, because a grant is a bearer of access.
	// Zero means 60 s.
	GrantTTL time.Duration
	// RelayMaxSessions bounds the sessions relayed at once. Zero means
	// 1024.
	RelayMaxSessions int
	// RelayMaxPerPeer bounds the relayed sessions of one technician or
	// agent. Zero means 16.
	RelayMaxPerPeer int
	// RelayMaxBytes bounds the bytes one relayed session may move; 0 means
	// no limit (the default: file copies and long sessions are the job).
	RelayMaxBytes int64
	// RelayMaxDuration bounds a relayed session's life; 0 means no limit
	// (the default).
	RelayMaxDuration time.Duration

	// ReleaseDownloads bounds the release binaries the broker sends at
	// once, to agents and other brokers together; more wait their turn.
	// Zero means 32 (see releases.Config.MaxDownloads).
	ReleaseDownloads int

	// TokenTTL is the default lifetime of enrolment tokens. Zero means 24 h.
	TokenTTL time.Duration
	// LoginTTL is the lifetime of one-time technician login tokens. Zero
	// means 72 h.
	LoginTTL time.Duration

	// Logger receives the broker's logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now; tests may pin it.
	Now func() time.Time
}

// DefaultConfig returns the production defaults for a broker keeping its
// data in dir.
func DefaultConfig(dir string) Config {
	c := Config{DataDir: dir}
	c.setDefaults()
	return c
}

// TestConfig returns a configuration for tests: loopback only, port 0,
// heartbeats every 100 ms.
func TestConfig(dir string) Config {
	c := Config{DataDir: dir, Listen: []string{"127.0.0.1:0"}, HTTP: "127.0.0.1:0", STUN: "127.0.0.1:0",
		Heartbeat: 100 * time.Millisecond, LastSeenFlush: time.Second, MaxBridges: 10000}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Region == "" {
		c.Region = "default"
	}
	if len(c.Listen) == 0 {
		c.Listen = []string{"0.0.0.0:7400"}
	}
	if c.HTTP == "" {
		c.HTTP = "127.0.0.1:7480"
	}
	c.setHTTPDefaults()
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.MissedHeartbeats <= 0 {
		c.MissedHeartbeats = 3
	}
	if c.LastSeenFlush <= 0 {
		c.LastSeenFlush = 10 * time.Minute
	}
	if c.MaxSnapshot <= 0 {
		c.MaxSnapshot = 1 << 20
	}
	if c.HistoryLimit <= 0 {
		c.HistoryLimit = 100
	}
	if c.MaxBridges <= 0 {
		c.MaxBridges = 20000
	}
	if c.CheckInMemory <= 0 {
		c.CheckInMemory = 64 << 20
	}
	if c.TranscriptMemory <= 0 {
		c.TranscriptMemory = 64 << 20
	}
	if c.AcceptRate <= 0 {
		c.AcceptRate = 500
	}
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = 256
	}
	if c.STUN == "" {
		c.STUN = ":3478"
	}
	if c.AlertEvery <= 0 {
		c.AlertEvery = 30 * time.Second
	}
	if c.AlertOffline <= 0 {
		c.AlertOffline = 15 * time.Minute
	}
	if c.AlertOverdueIntervals <= 0 {
		c.AlertOverdueIntervals = 3
	}
	if c.AlertNeverCheckedIn <= 0 {
		c.AlertNeverCheckedIn = time.Hour
	}
	if c.BusyLoad <= 0 {
		c.BusyLoad = 0.9
	}
	if c.GrantTTL <= 0 {
		c.GrantTTL = 60 * time.Second
	}
	if c.RelayMaxSessions <= 0 {
		c.RelayMaxSessions = 1024
	}
	if c.RelayMaxPerPeer <= 0 {
		c.RelayMaxPerPeer = 16
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = 24 * time.Hour
	}
	if c.LoginTTL <= 0 {
		c.LoginTTL = 72 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}
