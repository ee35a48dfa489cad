package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/mesh/turnserver"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// File names inside the data directory.
const (
	KeyFile        = "broker.key"
	StoreFile      = "broker.db"
	InfoFile       = "broker.json"
	CredentialFile = "admin.credential"
)

// Broker is a running broker. Create it with New, run it with Run.
type Broker struct {
	cfg Config
	log *slog.Logger

	// Immutable after New.
	key     *identity.Key
	store   *store.Store
	host    host.Host
	httpLn  net.Listener // nil when HTTP is off
	reg     *prometheus.Registry
	metrics *metrics
	live    *presence
	techs   *techConns
	repl    *replicator
	relays  *relays

	sessionRate sessionRate
	alerts      *alerter
	queue       *dispatcher
	grants      granted

	stunConn   net.PacketConn // nil when STUN is off
	stunObs    *mesh.Observer
	turn       *turnserver.Server // nil without a relay address
	turnSecret []byte

	adminHash string        // hash of this broker's admin credential; set in Run before serving
	copies    atomic.Uint64 // rotates the peer that gets second copies
	cluster   *pools        // nil when the broker runs alone
	console   *webConsole
	changes   *changes // notified when what the console shows may have changed

	closeOnce sync.Once
}

// New opens the broker's store and key and starts listening. Nothing is
// served until Run.
func New(cfg Config) (*Broker, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("broker: Config.DataDir is empty")
	}
	if cfg.AlertWebhook != "" {
		if u, err := url.Parse(cfg.AlertWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("broker: alert webhook %q is not an http(s) URL", cfg.AlertWebhook)
		}
	}
	cfg.setDefaults()
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, reg: prometheus.NewRegistry(), changes: newChanges()}
	b.console = newWebConsole(b)
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: data dir: %w", err)
	}
	key, created, err := identity.LoadOrCreate(filepath.Join(cfg.DataDir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if created {
		b.log.Info("created broker key", "peer_id", key.ID)
	}
	b.key = key
	// The store stamps replicated writes with the broker's peer ID: unique
	// in the cluster, and stable across restarts.
	b.store, err = store.Open(store.Config{Path: filepath.Join(cfg.DataDir, StoreFile),
		HistoryLimit: cfg.HistoryLimit, Logger: b.log, Broker: key.ID.String(), Now: cfg.Now,
		MaxSnapshot: cfg.MaxSnapshot, OnCommit: b.changes.notify})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.metrics = newMetrics(b.reg)
	b.live = newPresence()
	b.live.onChange = b.changes.notify
	b.techs = &techConns{b: b, n: map[string]int{}}
	b.repl = newReplicator(b)
	b.relays = newRelays(b)
	b.alerts = newAlerter(b)
	b.queue = newDispatcher(b)
	b.host, err = bridge.NewHost(bridge.HostConfig{Key: key, Listen: cfg.Listen,
		MaxConns: cfg.MaxBridges, Metrics: b.reg})
	if err != nil {
		b.store.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := b.startSTUN(); err != nil {
		b.host.Close()
		b.store.Close()
		return nil, err
	}
	if cfg.HTTP != "off" {
		b.httpLn, err = net.Listen("tcp", cfg.HTTP)
		if err != nil {
			b.host.Close()
			b.store.Close()
			return nil, fmt.Errorf("broker: http listen: %w", err)
		}
		if !loopback(b.httpLn.Addr().String()) && !strings.HasPrefix(cfg.ConsoleURL, "https://") {
			// The console's cookie and the browser's session offers would
			// cross the network in clear.
			b.log.Warn("the web console is served over plain HTTP beyond loopback: put a TLS proxy in front of it and set --console-url https://…",
				"http", b.httpLn.Addr().String())
		}
	}
	if b.cluster, err = b.newCluster(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
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
	info.STUNPort = b.stunPort()
	if b.cluster != nil {
		info.Gossip = b.cluster.LocalAddr()
		info.WANGossip = b.cluster.WANAddr()
	}
	return info
}

// Run serves until ctx is done, then shuts down and returns nil, or returns
// the first error that stops the broker. The ready callback, if not nil, is
// called once broker.json and the admin credential are written.
func (b *Broker) Run(ctx context.Context, ready func(info wire.BrokerInfo, credentialPath string)) error {
	defer b.Close()
	cred, err := b.ensureAdmin()
	if err != nil {
		return err
	}
	b.handle()
	b.host.Network().Notify(b.techs)
	if err := writeJSONFile(filepath.Join(b.cfg.DataDir, InfoFile), b.Info(), 0o644); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	if b.httpLn != nil {
		srv := &http.Server{Handler: b.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := srv.Serve(b.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("broker: http: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			close(b.console.done) // live-update streams end
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			if srv.Shutdown(sctx) != nil {
				srv.Close() // handlers still running after 2 s are cut off
			}
		}()
	}
	wg.Add(4)
	go func() {
		defer wg.Done()
		b.flushLastSeen(ctx)
	}()
	go func() {
		defer wg.Done()
		b.queue.run(ctx)
	}()
	go func() {
		defer wg.Done()
		b.alerts.run(ctx)
	}()
	go func() {
		defer wg.Done()
		b.alerts.post(ctx)
	}()
	if b.stunConn != nil {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if b.turn == nil { // else pion's TURN server reads the port
				b.stunObs.Serve(b.stunConn)
			}
		}()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			if b.turn != nil {
				b.turn.Close()
			}
			b.stunConn.Close()
		}()
	}
	if b.cluster != nil {
		b.cluster.OnMessage(noticeTopic, b.repl.notice)
		b.cluster.OnPresence(func(string, cluster.PresenceEntry) { b.changes.notify() })
		if err := b.cluster.Start(ctx); err != nil {
			return fmt.Errorf("broker: cluster: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.repl.run(ctx)
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.publishMeta(ctx)
		}()
	}
	if ready != nil {
		ready(b.Info(), cred)
	}
	b.log.Info("broker ready", "peer_id", b.ID(), "name", b.cfg.Name, "region", b.cfg.Region)
	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
	}
	cancel()
	// Order: leave the cluster first, so the other brokers see this one
	// leave rather than fail; then stop accepting bridges so no presence
	// stream opens while the last-seen times are written; then wait for our
	// goroutines; then (in Close) close the store.
	if b.cluster != nil {
		b.cluster.Close()
	}
	b.host.Close()
	wg.Wait()
	b.live.flushAll(b.store, b.cfg.Now())
	return err
}

// Close releases the host and the store. It is safe to call more than once
// and after Run.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		if b.cluster != nil {
			b.cluster.Close()
		}
		b.host.Close()
		if b.httpLn != nil {
			b.httpLn.Close()
		}
		err = b.store.Close()
	})
	return err
}

// flushLastSeen writes online machines' last-seen times every
// LastSeenFlush, so a broker crash loses at most one interval of them, and
// once a day drops tombstones past the store's retention.
func (b *Broker) flushLastSeen(ctx context.Context) {
	purged := time.Now()
	t := time.NewTicker(b.cfg.LastSeenFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.live.flushAll(b.store, b.cfg.Now())
			if time.Since(purged) > 24*time.Hour {
				if n, err := b.store.PurgeTombstones(); err != nil {
					b.log.Warn("purging tombstones", "err", err)
				} else if n > 0 {
					b.log.Info("purged tombstones", "records", n)
				}
				purged = time.Now()
			}
		}
	}
}

// ensureAdmin creates the admin credential on first start, or rewrites the
// existing one with the broker's current addresses. Deleting the file and
// restarting the broker replaces the credential.
//
// The credential belongs to this broker: it logs in here only, checked
// against the file, not against the store. In a cluster every broker has
// its own, while the admin technician it logs in as, and the keys bound to
// it, are replicated like every record: a key logged in on one broker is
// the admin on all of them.
func (b *Broker) ensureAdmin() (string, error) {
	path := filepath.Join(b.cfg.DataDir, CredentialFile)
	raw, err := os.ReadFile(path)
	var tok wire.Token
	switch {
	case err == nil:
		tok, err = wire.ParseToken(wire.KindLogin, string(raw))
		if err != nil || tok.Broker.PeerID != b.ID() {
			return "", fmt.Errorf("broker: %s is not this broker's admin credential; delete it to create a new one", path)
		}
	case errors.Is(err, os.ErrNotExist):
		tok = wire.Token{Kind: wire.KindLogin, Secret: wire.NewSecret()}
		b.log.Info("created admin credential", "path", path)
	default:
		return "", fmt.Errorf("broker: %w", err)
	}
	b.adminHash = wire.HashSecret(tok.Secret)
	if b.store.AdminHash() == "" {
		// First start of this broker or of the cluster: creates the admin
		// technician. Later starts leave the replicated record alone.
		if err := b.store.SetAdminHash(b.adminHash, b.cfg.Now()); err != nil {
			return "", fmt.Errorf("broker: admin credential: %w", err)
		}
	}
	tok.Broker = b.Info()
	if err := writeFileAtomic(path, []byte(tok.String()+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("broker: %w", err)
	}
	return path, nil
}

func writeJSONFile(path string, v any, mode os.FileMode) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(raw, '\n'), mode)
}

// writeFileAtomic writes via a temporary file and rename, so readers never
// see a half-written file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
