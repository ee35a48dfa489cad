// Package enrol admits the mesh's members: agents enrol with a client's
// token, technicians log in with a one-time login token (or the broker's
// admin credential), and admins make those tokens.
//
// Tokens (rme1_… for enrolment, rml1_… for login) carry a secret and the
// issuing broker's peer ID and addresses, so their holder dials and pins
// that broker. The broker stores only a SHA-256 of each secret. A token
// issued by another broker of the same cluster is accepted: tokens,
// technicians and machines are replicated records. An enrolment is copied
// to a second broker before it is acknowledged.
//
// The admin credential (admin.credential in the data directory) belongs
// to one broker: it logs in there only, checked against the file. The
// admin technician it logs in as, and the keys bound to it, are replicated
// like every record. Rotating a broker's credential (RotateAdmin, or
// Rotate on a stopped broker's store) replaces the file and signs out
// every admin key on every broker; the other brokers' credentials stay
// as they are.
package enrol

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// CredentialFile is the admin credential's name in the data directory.
const CredentialFile = "admin.credential"

// Config configures admission. Zero values mean the documented defaults.
type Config struct {
	// DataDir holds the admin credential. It must not be empty.
	DataDir string
	// TokenTTL is the default lifetime of enrolment tokens. Zero means
	// 24 h.
	TokenTTL time.Duration
	// LoginTTL is the lifetime of one-time login tokens. Zero means 72 h.
	LoginTTL time.Duration
	// Logger receives the logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Metrics, if not nil, receives readymesh_enrolments_total.
	Metrics prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.TokenTTL <= 0 {
		c.TokenTTL = 24 * time.Hour
	}
	if c.LoginTTL <= 0 {
		c.LoginTTL = 72 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Store is what admission reads and writes.
type Store interface {
	Enroll(r store.EnrollRequest) (store.Machine, error)
	Login(hash, key string, admin bool, now time.Time) (wire.Technician, error)
	CreateToken(hash string, t store.Token) error
	CreateTechnician(t wire.Technician, loginHash string, expires time.Time) error
	AdminHash() string
	SetAdminHash(hash string, now time.Time) error
	RotateAdmin(hash, by string, now time.Time) ([]string, error)
	// ReleaseKey is the fleet's release key, which enrolment tokens
	// carry, if it has one.
	ReleaseKey() (store.ReleaseKeyRecord, bool)
}

// Self describes this broker: tokens and replies carry it.
type Self interface {
	ID() string
	Info() wire.BrokerInfo
}

// Replication carries admission's records to the other brokers.
type Replication interface {
	// IsMember reports whether a peer ID is a broker of the cluster.
	IsMember(peerID string) bool
	// Written announces records written here.
	Written(keys ...store.Key)
	// CopyToPeer pushes records to a second broker and waits for its
	// commit.
	CopyToPeer(ctx context.Context, keys ...store.Key)
}

// Admission admits agents and technicians.
type Admission struct {
	cfg    Config
	store  Store
	self   Self
	repl   Replication
	enrols *prometheus.CounterVec
	// adminHash is the hash of this broker's admin credential, set by
	// EnsureAdmin before the broker serves and replaced by RotateAdmin.
	adminHash atomic.Pointer[string]
	// rotating serialises RotateAdmin.
	rotating sync.Mutex
}

// New returns the broker's admission.
func New(cfg Config, st Store, self Self, repl Replication) *Admission {
	cfg.setDefaults()
	a := &Admission{cfg: cfg, store: st, self: self, repl: repl,
		enrols: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_enrolments_total",
			Help: "Enrolments by result."}, []string{"result"})}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(a.enrols)
	}
	return a
}

// fromThisCluster reports whether broker is this broker or another of its
// cluster: tokens it issued are good here.
func (a *Admission) fromThisCluster(broker string) bool {
	return broker == a.self.ID() || a.repl.IsMember(broker)
}
