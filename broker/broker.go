package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/audit"
	"github.com/readymesh/readymesh/broker/brokers"
	"github.com/readymesh/readymesh/broker/checkin"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/console"
	"github.com/readymesh/readymesh/broker/enrol"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/queue"
	"github.com/readymesh/readymesh/broker/reach"
	"github.com/readymesh/readymesh/broker/relay"
	"github.com/readymesh/readymesh/broker/releases"
	"github.com/readymesh/readymesh/broker/replicate"
	"github.com/readymesh/readymesh/broker/rollout"
	"github.com/readymesh/readymesh/broker/session"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// File names inside the data directory.
const (
	KeyFile        = "broker.key"
	StoreFile      = "broker.db"
	InfoFile       = "broker.json"
	CredentialFile = enrol.CredentialFile
)

// Broker is a running broker: the rooms of package doc, joined. Create it
// with New, run it with Run.
type Broker struct {
	cfg Config
	log *slog.Logger

	// Immutable after New.
	key     *identity.Key
	store   *store.Store
	host    host.Host
	httpLn  net.Listener // nil when HTTP is off
	reg     *prometheus.Registry
	serve   *serve.Server
	changes *console.Changes // notified when what the console shows may have changed
	cluster *cluster.Pools   // nil when the broker runs alone

	// The rooms.
	admit    *enrol.Admission
	reach    *reach.Layer
	techs    *reach.Technicians
	sessions *session.Service
	relay    *relay.Relay
	queue    *queue.Queue
	releases *releases.Room
	rollouts *rollout.Room
	alerts   *alerts.Alerts
	repl     *replicate.Replicator
	console  *console.Console
	audit    *audit.Log
	brokers  *brokers.List
	checkins *checkin.Intake
	fleet    *fleet
	ops      *ops
	revoker  *revoker

	closeOnce sync.Once
}

// New opens the broker's key and store, listens, and builds its rooms.
// Nothing is served until Run.
func New(cfg Config) (*Broker, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, reg: prometheus.NewRegistry(), changes: console.NewChanges(), revoker: newRevoker()}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := b.openState(); err != nil {
		return nil, err
	}
	if err := b.listen(); err != nil {
		b.store.Close()
		return nil, err
	}
	if err := b.assemble(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// check refuses a configuration that cannot work.
func (c *Config) check() error {
	if c.DataDir == "" {
		return errors.New("broker: Config.DataDir is empty")
	}
	if c.AlertWebhook != "" {
		if u, err := url.Parse(c.AlertWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("broker: alert webhook %q is not an http(s) URL", c.AlertWebhook)
		}
	}
	return nil
}

// openState opens the data directory, the key and the store.
func (b *Broker) openState() error {
	if err := os.MkdirAll(b.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("broker: data dir: %w", err)
	}
	key, created, err := identity.LoadOrCreate(filepath.Join(b.cfg.DataDir, KeyFile))
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if created {
		b.log.Info("created broker key", "peer_id", key.ID)
	}
	b.key = key
	// The store stamps replicated writes with the broker's peer ID: unique
	// in the cluster, and stable across restarts.
	b.store, err = store.Open(store.Config{Path: filepath.Join(b.cfg.DataDir, StoreFile),
		HistoryLimit: b.cfg.HistoryLimit, Logger: b.log, Broker: key.ID.String(), Now: b.cfg.Now,
		MaxSnapshot: b.cfg.MaxSnapshot, OnCommit: b.changes.Notify, OnRevoke: b.revoker.note})
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	return nil
}

// listen starts the bridge host and the HTTP listener.
func (b *Broker) listen() error {
	var err error
	b.host, err = bridge.NewHost(bridge.HostConfig{Key: b.key, Listen: b.cfg.Listen,
		MaxConns: b.cfg.MaxBridges, Quotas: quotas(&b.cfg),
		AcceptRate: b.cfg.AcceptRate, MaxHandshakes: b.cfg.MaxHandshakes, Metrics: b.reg, Net: b.cfg.Net})
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	switch {
	case b.cfg.HTTPListener != nil:
		b.httpLn = b.cfg.HTTPListener
	case b.cfg.HTTP != "off" && b.cfg.Net == nil:
		if b.httpLn, err = net.Listen("tcp", b.cfg.HTTP); err != nil {
			b.host.Close()
			return fmt.Errorf("broker: http listen: %w", err)
		}
	}
	if b.httpLn != nil && !loopback(b.httpLn.Addr().String()) && !strings.HasPrefix(b.cfg.ConsoleURL, "https://") {
		// The console's cookie and the browser's session offers would
		// cross the network in clear.
		b.log.Warn("the web console is served over plain HTTP beyond loopback: put a TLS proxy in front of it and set --console-url https://…",
			"http", b.httpLn.Addr().String())
	}
	return nil
}

// ID returns the broker's peer ID.
func (b *Broker) ID() string { return b.key.ID.String() }

// Store returns the broker's store.
func (b *Broker) Store() *store.Store { return b.store }

// Info returns how peers find this broker.
func (b *Broker) Info() wire.BrokerInfo {
	info := wire.BrokerInfo{PeerID: b.ID(), Name: b.cfg.Name, Region: b.cfg.Region}
	for _, a := range b.host.Addrs() {
		info.Addrs = append(info.Addrs, a.String()+"/p2p/"+b.ID())
	}
	if b.httpLn != nil {
		info.HTTP = b.httpLn.Addr().String()
	}
	if b.sessions != nil { // nil while New assembles the rooms
		info.STUNPort = b.sessions.STUNPort()
	}
	if b.cluster != nil {
		info.Gossip = b.cluster.LocalAddr()
		info.WANGossip = b.cluster.WANAddr()
	}
	return info
}

// Close releases what New opened. It is safe to call more than once and
// after Run.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		if b.cluster != nil {
			b.cluster.Close()
		}
		if b.sessions != nil {
			b.sessions.Close()
		}
		if b.releases != nil { // its pulls write to the store
			b.releases.Close()
		}
		b.host.Close()
		if b.httpLn != nil {
			b.httpLn.Close()
		}
		err = b.store.Close()
	})
	return err
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}
