package session

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/transport/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/internal/rate"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/mesh/turnserver"
	"github.com/readymesh/readymesh/peer/wire"
)

// Config configures the broker's live sessions. Zero values mean the
// documented defaults.
type Config struct {
	// Name is this broker's name, shown as the relay's name.
	Name string
	// GrantTTL is how long a grant is valid: the technician must connect
	// within it. Zero means 60 s.
	GrantTTL time.Duration
	// STUN is the UDP address of the STUN (and TURN) port. "off" disables
	// it; empty means ":3478".
	STUN string
	// TURNIP is the address TURN relay candidates carry. Empty means the
	// STUN address's IP when it is specific; with neither there is no
	// TURN relay.
	TURNIP string
	// TURNAllocations bounds TURN allocations. Zero means 2048.
	TURNAllocations int
	// Net is the network the STUN socket comes from. Nil means the host's.
	Net transport.Net
	// Logger receives the logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Metrics, if not nil, receives readymesh_sessions_granted_total.
	Metrics prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.GrantTTL <= 0 {
		c.GrantTTL = 60 * time.Second
	}
	if c.STUN == "" {
		c.STUN = ":3478"
	}
	if c.TURNAllocations <= 0 {
		c.TURNAllocations = 2048
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Store is what sessions read and write of stored state.
type Store interface {
	Machines() []store.Machine
	Machine(id string) (store.Machine, bool)
	PutTranscript(t wire.Transcript) error
	Transcripts(prefix string) ([]wire.Transcript, error)
}

// Reach is the reachability layer, as sessions need it.
type Reach interface {
	// Online reports whether id is bridged to this broker.
	Online(id string) bool
	// Elsewhere names the other broker of the cluster holding id's bridge.
	Elsewhere(id string) (broker string, ok bool)
}

// Brokers describes another broker of the cluster, for redirects.
type Brokers interface {
	Describe(name string) (wire.BrokerInfo, bool)
}

// Relay offers relay slots to granted sessions.
type Relay interface {
	Expect(session string, tech, agent peer.ID, expires time.Time) *wire.Error
	Forget(session string)
}

// Deps are the collaborators of live sessions. None may be nil unless
// said.
type Deps struct {
	// Key signs grants: the broker's identity key.
	Key crypto.PrivKey
	// Host is the broker's bridge host: offers and policies travel to
	// agents on it, and it measures technicians' round trips.
	Host    host.Host
	Store   Store
	Reach   Reach
	Brokers Brokers
	Relay   Relay
	Audit   *audit.Log
	// Status is the session-status table (NewStatus), which the agents'
	// reports fill.
	Status *Status
	// Refused counts requests refused before they are audited (a rate
	// limit).
	Refused func(request, code string)
}

// Service is the broker's part in live sessions.
type Service struct {
	cfg     Config
	deps    Deps
	granted *prometheus.CounterVec // by requested transport (validated)
	rate    rate.Limiter
	grants  grantMemory
	status  *Status
	stun    *stunPort // nil when STUN is off
}

// Session request limits per technician key: each request opens sockets
// and sends probes on an agent, and may hold a relay slot.
const (
	requestBurst = 10
	requestEvery = 200 * time.Millisecond
)

// New returns the Service and opens its STUN port.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg.setDefaults()
	s := &Service{cfg: cfg, deps: deps, rate: rate.Limiter{Burst: requestBurst, Every: requestEvery},
		granted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_sessions_granted_total",
			Help: "Session grants the agent accepted, by requested transport."}, []string{"transport"}),
		status: deps.Status}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(s.granted)
	}
	var err error
	if s.stun, err = openSTUN(&cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Status is the session-status table.
func (s *Service) Status() *Status { return s.status }

// Run serves the STUN port until ctx ends, then closes it.
func (s *Service) Run(ctx context.Context) {
	if s.stun == nil {
		return
	}
	s.stun.run(ctx)
}

// Close closes the STUN port if Run never ran. It is idempotent.
func (s *Service) Close() {
	if s.stun != nil {
		s.stun.close()
	}
}

// STUNAddr is the STUN port's address, or nil when STUN is off.
func (s *Service) STUNAddr() *net.UDPAddr {
	if s.stun == nil {
		return nil
	}
	return s.stun.addr()
}

// STUNPort is the STUN port's number, or 0 when STUN is off.
func (s *Service) STUNPort() int {
	if a := s.STUNAddr(); a != nil {
		return a.Port
	}
	return 0
}

// TURNHost is the address TURN candidates carry as configured, or "".
func (s *Service) TURNHost() string { return s.cfg.TURNIP }

// TURNCredentials returns TURN credentials for user, valid for 12 hours
// (a relayed WebRTC session cannot refresh its allocation past them), or
// empty strings when the broker relays no WebRTC.
func (s *Service) TURNCredentials(user string) (string, string) {
	if s.stun == nil || s.stun.turn == nil {
		return "", ""
	}
	return turnserver.Credentials(s.stun.turnSecret, user, s.cfg.Now().Add(12*time.Hour))
}

// ICE answers OpSessionICE: what a WebRTC offerer needs before it gathers
// candidates.
func (s *Service) ICE(techID peer.ID) wire.ICEInfo {
	u, p := s.TURNCredentials(techID.String())
	return wire.ICEInfo{STUNPort: s.STUNPort(), TURNUser: u, TURNPassword: p}
}

// observe waits briefly for the technician's STUN request carrying token
// and returns the address it came from.
func (s *Service) observe(ctx context.Context, token string) ([]wire.Candidate, bool) {
	if token == "" || s.stun == nil {
		return nil, false
	}
	wctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	ap, ok := s.stun.obs.Wait(wctx, token)
	if !ok {
		return nil, false
	}
	return []wire.Candidate{{Kind: wire.CandSrflx, Addr: ap.String()}}, true
}
