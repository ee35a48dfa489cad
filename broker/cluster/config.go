package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a Cluster. The zero value of each field means its
// documented default; only Name is required.
type Config struct {
	// Name is this broker's node name. It must be unique in the cluster
	// (memberlist identifies nodes by name) and be 1–64 characters from
	// A–Z, a–z, 0–9, '.', '_' and '-'. Required.
	Name string
	// Region is the broker's region label, gossiped in its metadata. Empty
	// means Meta.Region; if both are set they must agree.
	Region string
	// BindAddr is the "ip:port" gossip listens on, UDP and TCP on the same
	// port. An empty host means all interfaces; port 0 asks the kernel for
	// one (LocalAddr reports it). Empty means "0.0.0.0:7946". Unused when
	// Transport is set.
	BindAddr string
	// Advertise is the "ip:port" other brokers reach this one at, when it
	// is not the bound address (behind NAT, or bound to all interfaces with
	// several addresses). Empty means the bound address, or the first
	// private address when bound to all interfaces.
	Advertise string
	// Join lists "host:port" addresses of brokers to join. New does not
	// dial them; Start joins in the background, retrying with exponential
	// backoff until one answers or the context ends, so brokers can start
	// in any order. Later, while this broker is alone, it keeps retrying
	// them. Empty means this broker founds the cluster and waits for
	// others to join it.
	Join []string
	// SecretKeys are the AES keys (16, 24 or 32 bytes) that encrypt and
	// authenticate gossip; see LoadKeyFile. The first encrypts, all are
	// tried when decrypting (key rotation). Every broker of a cluster must
	// share a key; a broker with another key cannot join, and both sides
	// log why. Nil means unencrypted gossip, fit only for tests and
	// loopback; New logs a warning for any other address.
	SecretKeys [][]byte
	// Profile picks the failure-detection and gossip timing. Empty means
	// ProfileLAN. See Profile for the trade-off and the multi-region rule.
	Profile Profile
	// Meta is this broker's initial metadata; UpdateMeta changes it.
	Meta Meta
	// StateHook, if not nil, rides readiness digests on push/pull
	// anti-entropy. Nil means none.
	StateHook StateHook
	// LeaveTimeout bounds how long Close waits for the leave messages to
	// be gossiped, so peers mark this broker "left" at once instead of
	// suspecting it and then declaring it dead. Zero means 3 s. Negative
	// means Close does not leave: peers see the broker fail as if it
	// crashed.
	LeaveTimeout time.Duration
	// NoteTTL is how long a machine note (see Note) is kept after its
	// stamp; older ones are dropped on every broker and not accepted
	// again. Zero means DefaultNoteTTL, 30 days: a machine shut down over
	// a long holiday still says so when it is looked at, while one retired
	// for good stops costing its few hundred bytes on every broker and in
	// every push/pull after a month. It must not be negative.
	NoteTTL time.Duration

	// Transport carries gossip. Nil means memberlist's NetTransport on
	// BindAddr (UDP for gossip and probes, TCP for push/pull). Tests
	// inject in-memory and fault-injecting transports here.
	Transport memberlist.Transport
	// Logger receives the cluster's logs, and memberlist's own at debug
	// level. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time for presence timestamps and expiry.
	// Nil means time.Now.
	Now func() time.Time

	// testOnlyLegacy makes the Cluster speak as brokers released before
	// machine notes do: metadata without metaFlagNotes, push/pull state
	// version 1 only (any other refused), note messages dropped as of an
	// unknown kind. Compatibility tests run it beside current brokers.
	testOnlyLegacy bool
}

// Profile names a timing preset. memberlist takes one configuration per
// node and every node probes every other, so the timing fits the slowest
// path a broker probes.
//
// The rule: a pool whose brokers are all in one region runs ProfileLAN; a
// pool that spans regions runs ProfileWAN on every broker. Brokers of
// several regions can therefore run one WAN pool, or two pools each (see
// Pools): a LAN pool per region and one WAN pool of all brokers. Region
// cannot pick the profile automatically: the profile must be chosen before
// a broker knows who it will meet, and a LAN-timed broker probing across
// an ocean suspects healthy peers whenever the round trip spikes past
// 500 ms. The price of WAN timing is slower detection of a dead broker
// (tens of seconds instead of a few); that delays only the cluster's view
// of the presence that broker held, because its agents reconnect
// elsewhere on their own. A LAN-profile broker that meets a member from
// another region logs a warning saying so.
type Profile string

// Timing presets.
const (
	// ProfileLAN is memberlist's DefaultLANConfig with faster failure
	// detection (see lanConfig): probe every 800 ms with a 500 ms timeout,
	// gossip every 200 ms to 3 nodes, push/pull every 30 s. A dead broker
	// is suspected within about N probe intervals and declared dead
	// 2.4–14.4 s later (faster with a confirmation).
	ProfileLAN Profile = "lan"
	// ProfileWAN is memberlist's DefaultWANConfig: probe every 5 s with a
	// 3 s timeout, gossip every 500 ms to 4 nodes, push/pull every 60 s.
	// A broker that stops answering is suspected at the next probe of it
	// and declared dead 30 s to 3 min later (up to 10 brokers; the bounds
	// grow with the log of the cluster's size).
	ProfileWAN Profile = "wan"
	// ProfileLocal is memberlist's DefaultLocalConfig, for tests and a
	// single host: 200 ms probe timeout, gossip every 100 ms, push/pull
	// every 15 s, and short reconnect and join backoff intervals.
	ProfileLocal Profile = "local"
)

// timing is a profile's full set of intervals: memberlist's own and the
// ones this package adds on top.
type timing struct {
	base               func() *memberlist.Config
	joinMin, joinMax   time.Duration // join retry backoff bounds
	reconnectInterval  time.Duration // how often dead members are re-joined
	reconnectTimeout   time.Duration // how long dead members are remembered
	housekeepInterval  time.Duration // expiry of tombstones, members, queues
	metaUpdateInterval time.Duration // minimum spacing of metadata updates
}

func (p Profile) timing() (timing, error) {
	switch p {
	case "", ProfileLAN:
		return timing{lanConfig, 250 * time.Millisecond, 15 * time.Second,
			10 * time.Second, 6 * time.Hour, time.Second, time.Second}, nil
	case ProfileWAN:
		return timing{memberlist.DefaultWANConfig, time.Second, time.Minute,
			30 * time.Second, 24 * time.Hour, time.Second, 2 * time.Second}, nil
	case ProfileLocal:
		return timing{memberlist.DefaultLocalConfig, 50 * time.Millisecond, time.Second,
			time.Second, time.Minute, 250 * time.Millisecond, 100 * time.Millisecond}, nil
	}
	return timing{}, fmt.Errorf("%w: unknown profile %q (want lan, wan or local)", ErrConfig, p)
}

// lanConfig is memberlist's DefaultLANConfig with faster failure
// detection: SuspicionMult 3 instead of 4 and a probe every 800 ms instead
// of 1 s. Up to 10 brokers the minimum suspicion timeout drops from 4 s to
// 2.4 s and a failed probe comes sooner, so a broker that stops answering
// shows dead everywhere in about 4–5 s instead of about 6
// (BenchmarkFailureDetection). The price: a slow but healthy broker must
// answer a probe within the unchanged 500 ms and refute a suspicion within
// 2.4 s instead of 4, so it is falsely declared dead more easily; a
// suspicion needs one independent confirmation (instead of two) to shrink
// from its maximum (14.4 s) to that minimum; and probes cost 25% more
// packets. A false "dead" is cheap: the broker refutes it and rejoins, its
// presence only hidden in between. So is a late one: agents of a dead
// broker reconnect elsewhere on their own when heartbeats stop, so
// detection only sets how long the cluster's view lists its presence.
func lanConfig() *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.SuspicionMult = 3
	mc.ProbeInterval = 800 * time.Millisecond
	return mc
}

// gossipLabel is prepended to every packet and stream, so a broker never
// merges with another memberlist-based system (Consul, Nomad) that shares
// its port by mistake.
const gossipLabel = "readymesh"

// maxName bounds node names; they travel in every presence event.
const maxName = 64

func validName(s string) bool {
	if len(s) == 0 || len(s) > maxName {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// validate checks cfg and fills Meta's defaults.
func (cfg *Config) validate() error {
	if !validName(cfg.Name) {
		return fmt.Errorf("%w: name %q: want 1–%d characters from A-Z a-z 0-9 . _ -", ErrConfig, cfg.Name, maxName)
	}
	switch {
	case cfg.Meta.Region == "":
		cfg.Meta.Region = cfg.Region
	case cfg.Region == "":
		cfg.Region = cfg.Meta.Region
	case cfg.Region != cfg.Meta.Region:
		return fmt.Errorf("%w: Region %q and Meta.Region %q differ", ErrConfig, cfg.Region, cfg.Meta.Region)
	}
	if cfg.Meta.Name == "" {
		cfg.Meta.Name = cfg.Name
	}
	if cfg.NoteTTL < 0 {
		return fmt.Errorf("%w: NoteTTL %v is negative", ErrConfig, cfg.NoteTTL)
	}
	for i, k := range cfg.SecretKeys {
		if err := checkKey(k); err != nil {
			return fmt.Errorf("%w: secret key %d: %w", ErrConfig, i, err)
		}
	}
	if cfg.Advertise != "" {
		if _, _, err := splitIPPort(cfg.Advertise, false); err != nil {
			return fmt.Errorf("%w: Advertise: %w", ErrConfig, err)
		}
	}
	if cfg.Transport == nil {
		if _, _, err := splitIPPort(cfg.bindAddr(), true); err != nil {
			return fmt.Errorf("%w: BindAddr: %w", ErrConfig, err)
		}
	}
	_, err := cfg.Profile.timing()
	return err
}

func (cfg *Config) bindAddr() string {
	if cfg.BindAddr == "" {
		return "0.0.0.0:7946"
	}
	return cfg.BindAddr
}

// splitIPPort parses "ip:port". An empty host is allowed (as 0.0.0.0) only
// for bind addresses.
func splitIPPort(s string, bind bool) (string, int, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port in %q", s)
	}
	if host == "" && bind {
		host = "0.0.0.0"
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("host in %q must be an IP address", s)
	}
	if !bind && port == 0 {
		return "", 0, fmt.Errorf("port in %q must not be 0", s)
	}
	return host, int(port), nil
}
