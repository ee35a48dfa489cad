package console

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/internal/rate"
	"github.com/readymesh/readymesh/broker/session"
	"github.com/readymesh/readymesh/peer/wire"
)

// Console limits and lifetimes.
const (
	// CodeTTL is how long a sign-in code from meshctl console is good for.
	CodeTTL = 2 * time.Minute
	// SessionTTL is how long a console sign-in lasts: a working day. The
	// technician signs in again with meshctl console.
	SessionTTL = 12 * time.Hour
	// maxSessions bounds signed-in browsers (and codes) held in memory.
	maxSessions = 10000
	// maxStreams bounds open event streams.
	maxStreams = 2000
	// coalesce is how long an event stream gathers changes before it
	// sends, so a burst of check-ins costs one comparison.
	coalesce = 250 * time.Millisecond
	// refresh re-evaluates a stream's view even without a change, for
	// states that age (stale snapshots, alert windows), and keeps proxies
	// from closing an idle stream.
	refresh    = 30 * time.Second
	cookieName = "rm_console"
)

// Per-key bounds.
const (
	// CodesPerKey is how many unused sign-in codes one technician key
	// holds; a new one pushes out its oldest.
	CodesPerKey    = 5
	sessionsPerKey = 20
	streamsPerKey  = 4 // per sign-in: a few tabs
)

// Config configures the console.
type Config struct {
	// Name is this broker's name, shown by the page.
	Name string
	// URL is the console's address as technicians' browsers reach it
	// (behind a TLS proxy, say), used in sign-in links. Empty means
	// http:// and Addr, with 127.0.0.1 for an unspecified address.
	URL string
	// Addr is the HTTP listener's address. Nil means the broker serves no
	// HTTP, and so no console: sign-in codes are refused.
	Addr net.Addr
	// WriteTimeout bounds writing a response that was held open on
	// purpose (a session request waiting for consent), from the end of
	// the wait. Zero means 30 s.
	WriteTimeout time.Duration
	// Logger receives the logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Ops runs a technician operation as meshctl would: args is the
// operation's arguments, encoded as meshctl encodes them.
type Ops interface {
	Do(ctx context.Context, t *wire.Technician, techID peer.ID, op string, args any) (any, *wire.Error)
}

// Sessions opens live sessions.
type Sessions interface {
	Request(ctx context.Context, r session.Request) (wire.SessionResult, *wire.Error)
}

// Store is what the console reads of stored state directly.
type Store interface {
	TechnicianByKey(key string) (wire.Technician, error)
	AuditSince(after uint64, keep func(*wire.AuditEntry) bool) (newest uint64, found bool, err error)
}

// ICE is the broker's STUN and TURN, as browsers reach them.
type ICE interface {
	STUNAddr() *net.UDPAddr
	TURNHost() string
	TURNCredentials(user string) (string, string)
}

// Deps are the console's collaborators; none may be nil.
type Deps struct {
	Ops      Ops
	Sessions Sessions
	Store    Store
	ICE      ICE
	Audit    *audit.Log
	// Changes is notified whenever what the console shows may have
	// changed.
	Changes *Changes
	// Refused counts refused API requests by route and status.
	Refused func(request, code string)
}

// Console holds sign-in codes and signed-in browsers. Both are in memory:
// a broker restart signs everyone out, which is the safe failure.
//
// Bounds: each technician key holds at most CodesPerKey codes and
// sessionsPerKey sign-ins (its own oldest go first), and the broker at
// most maxSessions of both. At that bound new sign-ins are refused rather
// than anyone else's ended: one technician cannot sign the others out.
type Console struct {
	cfg  Config
	deps Deps
	done chan struct{} // closed by Close: streams end
	// rate limits meshctl console per technician key, and failed sign-ins
	// per remote address.
	rate      rate.Limiter
	closeOnce sync.Once

	mu       sync.Mutex
	codes    map[string]code        // mu guards all following fields; by SHA-256 of the code
	sessions map[string]*webSession // by SHA-256 of the cookie
	streams  int
	pruned   time.Time

	viewMu sync.Mutex
	view   *fleetView // viewMu guards; the newest computed view, shared by streams
}

type code struct {
	key     string // the technician's peer ID
	expires time.Time
}

type webSession struct {
	key     string // the technician's peer ID: the technician is looked up per request
	csrf    string
	expires time.Time
	streams int           // open event streams; Console.mu guards it
	ended   chan struct{} // closed when signed out, expired or removed: its streams end
}

// New returns the console.
func New(cfg Config, deps Deps) *Console {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	return &Console{cfg: cfg, deps: deps, done: make(chan struct{}),
		rate:  rate.Limiter{Burst: 10, Every: 200 * time.Millisecond},
		codes: map[string]code{}, sessions: map[string]*webSession{}}
}

// Close ends every event stream; it is idempotent. The HTTP server's
// shutdown waits for the handlers.
func (c *Console) Close() {
	c.closeOnce.Do(func() { close(c.done) })
}

// URL is the console's address as technicians reach it.
func (c *Console) URL() string {
	if c.cfg.URL != "" {
		return strings.TrimRight(c.cfg.URL, "/")
	}
	host, port, _ := net.SplitHostPort(c.cfg.Addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
