package rtc

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/readymesh/readymesh/mesh/internal/pionlog"
)

// Defaults for the zero values of Config. See the fields for the reasons.
const (
	DefaultHostWait            = 0
	DefaultSrflxWait           = 0
	DefaultPrflxWait           = 0
	DefaultRelayWait           = 400 * time.Millisecond
	DefaultGatherTimeout       = 3 * time.Second
	DefaultDisconnectedTimeout = 5 * time.Second
	DefaultFailedTimeout       = 15 * time.Second
	DefaultKeepaliveInterval   = 2 * time.Second
	DefaultSocketBuffer        = 4 << 20
)

// ReceiveWindow is the SCTP receive buffer of each session, which bounds
// the bytes in flight towards it: one session moves at most ReceiveWindow
// per round trip, 40 MB/s at 100 ms. pion's default of 1 MiB would cap a
// transfer across continents at 10 MB/s. It costs memory only while the
// application does not read.
const ReceiveWindow = 4 << 20

// Config configures one side of a session. The zero value of each field
// means its documented default, so Config{} works between two hosts that
// can reach each other directly.
type Config struct {
	// ICEServers are the broker's STUN and TURN services, e.g.
	// {URLs: ["stun:broker:3478"]} and {URLs: ["turn:broker:3478"],
	// Username, Credential} with credentials from turnserver.Credentials.
	// Nil means host candidates only: no hole punching, no relay.
	ICEServers []webrtc.ICEServer
	// Net opens every socket of the session. Nil means the host's
	// network; tests pass a pion vnet.Net.
	Net transport.Net

	// The ICE nomination waits below: once checks start, the controlling
	// side (the offerer) nominates the best pair that has succeeded, but
	// only after the wait for both of its candidates' types has passed,
	// so that a better pair that succeeds a moment later can still win.
	// pion re-examines pairs every 200 ms (a fixed check interval) or when
	// a check arrives, so a wait that has not passed when the first pair
	// succeeds costs up to a whole interval more. Zero means the default;
	// negative means no wait.
	//
	// HostWait applies to host candidates, the best kind. Default 0.
	HostWait time.Duration
	// SrflxWait applies to server-reflexive candidates: the punched path
	// between two NATs. The only better pair is host-to-host on one LAN,
	// whose checks leave first (higher priority) on a shorter path, so
	// they win without a wait. Default 0 (pion: 500 ms, which made every
	// punched session take 0.5 s).
	SrflxWait time.Duration
	// PrflxWait applies to peer-reflexive candidates, which is how a
	// punched path through a NAT often appears: the peer's checks arrive
	// from a mapping it could not advertise (a symmetric NAT towards a
	// full cone). Such a pair is a direct path. Default 0 (pion: 1 s).
	PrflxWait time.Duration
	// RelayWait applies to relay candidates. It is the time direct pairs
	// get to succeed before the session settles for the relay; ICE does
	// not move off a nominated relay later. Punching needs the offerer's
	// first checks, which leave when it applies the answer, and one round
	// trip; 400 ms (two check intervals) leaves room for one lost or
	// filtered first check on paths up to about 150 ms RTT. Sessions
	// between symmetric NATs pay it in full, since the relay is their
	// only path. Longer finds direct paths on slower links at the cost of
	// every relayed setup. Default 400 ms (pion: 2 s).
	RelayWait time.Duration

	// GatherTimeout bounds candidate gathering before Offer or Answer
	// returns its SDP; candidates gathered by then are sent, later ones
	// are lost (no trickle). Gathering normally takes one round trip to
	// the broker (STUN, TURN allocation); the bound matters when the
	// broker is unreachable. Default 3 s.
	GatherTimeout time.Duration
	// DisconnectedTimeout is how long without traffic from the peer
	// before the connection counts as disconnected (it may recover), and
	// FailedTimeout how long after that it is given up, closing
	// Session.Done. Keepalives every KeepaliveInterval keep an idle
	// session's NAT mappings open and show the peer is still there.
	// Defaults 5 s, 15 s, 2 s.
	DisconnectedTimeout, FailedTimeout, KeepaliveInterval time.Duration

	// SocketBuffer is the receive and send buffer size, in bytes, asked of
	// the kernel for each UDP socket, which it caps at net.core.rmem_max
	// and wmem_max. SCTP sends bursts of up to its window; a buffer
	// smaller than the burst drops packets before pion reads them, and
	// each drop halves SCTP's window (on loopback, 4 MiB doubled
	// throughput over the default 208 KiB). Zero means 4 MiB; negative
	// leaves the kernel's default.
	SocketBuffer int

	// IPFilter, if not nil, keeps only the local addresses for which it
	// returns true as host candidates (for instance to keep sessions off
	// a VPN interface). Nil keeps every address.
	IPFilter func(net.IP) (keep bool)
	// IncludeLoopback offers loopback addresses as host candidates, which
	// ICE leaves out by default. For tests and benchmarks on one machine.
	IncludeLoopback bool

	// Logger receives the session's logs, and pion's at debug level. Nil
	// means discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	wait := func(d *time.Duration, def time.Duration) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0:
			*d = 0
		}
	}
	wait(&c.HostWait, DefaultHostWait)
	wait(&c.SrflxWait, DefaultSrflxWait)
	wait(&c.PrflxWait, DefaultPrflxWait)
	wait(&c.RelayWait, DefaultRelayWait)
	if c.GatherTimeout <= 0 {
		c.GatherTimeout = DefaultGatherTimeout
	}
	if c.DisconnectedTimeout <= 0 {
		c.DisconnectedTimeout = DefaultDisconnectedTimeout
	}
	if c.FailedTimeout <= 0 {
		c.FailedTimeout = DefaultFailedTimeout
	}
	if c.KeepaliveInterval <= 0 {
		c.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if c.SocketBuffer == 0 {
		c.SocketBuffer = DefaultSocketBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// api builds the pion API for one peer connection from a Config with
// defaults applied.
func (c Config) api(log *slog.Logger) (*webrtc.API, error) {
	n := c.Net
	if n == nil {
		host, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("open host network: %w", err)
		}
		n = host
	}
	var se webrtc.SettingEngine
	se.LoggerFactory = pionlog.Factory{Log: log}
	se.DetachDataChannels()
	// Writes block while the association's send queue is full, so a bulk
	// writer is paced by SCTP congestion control instead of buffering
	// without bound.
	se.EnableDataChannelBlockWrite(true)
	se.SetSCTPMaxReceiveBufferSize(ReceiveWindow)
	se.SetHostAcceptanceMinWait(c.HostWait)
	se.SetSrflxAcceptanceMinWait(c.SrflxWait)
	se.SetPrflxAcceptanceMinWait(c.PrflxWait)
	se.SetRelayAcceptanceMinWait(c.RelayWait)
	se.SetSTUNGatherTimeout(c.GatherTimeout)
	se.SetICETimeouts(c.DisconnectedTimeout, c.FailedTimeout, c.KeepaliveInterval)
	// Up to three round trips less per setup (300 ms measured at 100 ms
	// RTT). DTLS HelloVerifyRequest proves the client owns its address;
	// pion's ICE passes DTLS only from addresses the peer advertised in
	// its SDP or proved in authenticated checks, so that round trip buys
	// nothing here. SCTP SNAP carries the SCTP INIT in the SDP
	// (a=sctp-init) instead of a handshake after DTLS; it is used only
	// when both sides offer it, so other peers still connect.
	se.SetDTLSInsecureSkipHelloVerify(true)
	se.EnableSctpSnap(true)
	// UDP only: ICE-TCP needs a listening mux we do not run, and active
	// TCP candidates would only add dead pairs.
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	// No mDNS: host candidates carry real addresses (agents are not
	// browsers hiding them), and nothing is sent to the multicast group.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(c.IncludeLoopback)
	if c.IPFilter != nil {
		se.SetIPFilter(c.IPFilter)
	}
	se.SetNet(bufferedNet{Net: n, size: c.SocketBuffer})
	return webrtc.NewAPI(webrtc.WithSettingEngine(se)), nil
}
