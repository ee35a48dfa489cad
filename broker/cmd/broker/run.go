package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/readymesh/readymesh/broker"
	"github.com/readymesh/readymesh/broker/alerts"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/peer/flagfile"
	"github.com/readymesh/readymesh/peer/wire"
)

// runFlags are the flags of broker run, bound to the Config they fill.
type runFlags struct {
	fs                                    *flag.FlagSet
	cfg                                   broker.Config
	listen, level, join, wanJoin, keyFile string
	gc                                    *int
}

// defineRunFlags defines broker run's flags on fs.
func defineRunFlags(fs *flag.FlagSet) *runFlags {
	f := &runFlags{fs: fs}
	fs.StringVar(&f.cfg.DataDir, "data", "/var/lib/readymesh/broker", "data `dir`ectory: key, store, broker.json, admin.credential")
	fs.StringVar(&f.listen, "listen", "0.0.0.0:7400", "bridge listen `addr`esses, comma-separated: host:port (QUIC+TCP on port, WebSocket on port+1; port 0 picks free ports) or multiaddrs")
	fs.StringVar(&f.cfg.HTTP, "http", "127.0.0.1:7480", "health, metrics and web console `addr`ess, or off")
	fs.StringVar(&f.cfg.ConsoleURL, "console-url", "", "the web console's `URL` as browsers reach it (e.g. behind a TLS proxy), for meshctl console's links (default: http:// and --http)")
	fs.DurationVar(&f.cfg.HTTPReadHeaderTimeout, "http-read-header-timeout", 0, "time to read a request's headers on --http (default 5s)")
	fs.DurationVar(&f.cfg.HTTPReadTimeout, "http-read-timeout", 0, "time to read a whole request, body included, on --http; the connection is closed after it (default 20s)")
	fs.DurationVar(&f.cfg.HTTPWriteTimeout, "http-write-timeout", 0, "time to write a response on --http; the console's event stream bounds each event instead (default 30s)")
	fs.DurationVar(&f.cfg.HTTPIdleTimeout, "http-idle-timeout", 0, "time a keep-alive connection on --http may wait for its next request (default 60s)")
	fs.IntVar(&f.cfg.HTTPMaxHeaderBytes, "http-max-header-bytes", 0, "largest request header on --http, in `bytes` (default 32 KiB)")
	fs.IntVar(&f.cfg.HTTPMaxConns, "http-max-conns", 0, "HTTP connections open at once; more are closed at accept (default 4096)")
	fs.IntVar(&f.cfg.HTTPMaxConnsPerIP, "http-max-conns-per-ip", 0, "HTTP connections open at once from one address (IPv6: one /64); behind a proxy, set it to --http-max-conns (default 256)")
	fs.IntVar(&f.cfg.ReleaseDownloads, "release-downloads", 0, "release binaries sent at once to agents and other brokers; more wait up to a minute (default 32)")
	fs.StringVar(&f.cfg.Name, "name", "", "broker `name` shown on machine cards (default: host name)")
	fs.StringVar(&f.cfg.Region, "region", "default", "`region` label")
	fs.StringVar(&f.cfg.Gossip, "gossip", "", "cluster gossip `addr`ess ip:port (UDP and TCP; port 0 picks one); empty runs the broker alone")
	fs.StringVar(&f.join, "join", "", "gossip `addr`esses of brokers to join, comma-separated")
	fs.StringVar(&f.keyFile, "gossip-key-file", "", "`file` of gossip keys (make one with: broker gossip-key FILE); required to join a cluster")
	fs.StringVar(&f.cfg.GossipProfile, "gossip-profile", "lan", "timing of the --gossip pool: lan (one region), wan (one pool across regions) or local (tests)")
	fs.StringVar(&f.cfg.WANGossip, "wan-gossip", "", "`addr`ess of a second pool that every broker of every region joins with WAN timing; --gossip then holds this region's brokers only")
	fs.StringVar(&f.wanJoin, "wan-join", "", "WAN-pool `addr`esses of brokers to join, comma-separated")
	fs.StringVar(&f.cfg.WANProfile, "wan-gossip-profile", "wan", "timing of the --wan-gossip pool: wan, or local for tests")
	fs.DurationVar(&f.cfg.Heartbeat, "heartbeat", 0, "heartbeat `interval` agents are told to use (default 5s); 3 missed heartbeats mark a machine offline")
	fs.IntVar(&f.cfg.MaxSnapshot, "max-snapshot", 0, "largest accepted check-in in `bytes` (default 1 MiB)")
	fs.IntVar(&f.cfg.HistoryLimit, "history", 0, "check-in summaries kept per machine (default 100)")
	fs.DurationVar(&f.cfg.Readiness.Grace, "stale-grace", 0, "a machine is stale after 2 check-in intervals plus this `grace` (default 10m)")
	fs.IntVar(&f.cfg.Readiness.MaxPendingUpdates, "max-pending-updates", 0, "more pending updates than this `count` make a machine degraded (default 10)")
	fs.DurationVar(&f.cfg.Readiness.MaxPendingAge, "max-pending-age", 0, "an update pending longer than this `age` makes a machine degraded (default 720h)")
	fs.StringVar(&f.cfg.Readiness.AgentVersion, "agent-version", "", "the agent `version` being rolled out: older agents are behind (default: for each client, the newest its own agents report)")
	fs.StringVar(&f.cfg.STUN, "stun", ":3478", "UDP `addr`ess of the STUN server peers learn their public session address from, or off")
	fs.StringVar(&f.cfg.TURNIP, "turn-ip", "", "`address` TURN relay candidates carry, the one peers reach this broker at (default: the --stun IP when specific)")
	fs.DurationVar(&f.cfg.AlertEvery, "alert-every", 0, "how often alerts are evaluated (default 30s)")
	fs.DurationVar(&f.cfg.AlertOffline, "alert-offline", 0, "reachability alert after a machine is lost (offline without notice) this long (default 15m)")
	fs.Var(alerts.ThresholdFlag(&f.cfg.AlertAway.Stopped), "alert-offline-stopped", "offline alert after a machine's agent was stopped for this `duration`, or none (default 1h)")
	fs.Var(alerts.ThresholdFlag(&f.cfg.AlertAway.Shutdown), "alert-offline-shutdown", "offline alert after a machine shut down and has not booted again for this `duration`, or none (default 24h)")
	fs.Var(alerts.ThresholdFlag(&f.cfg.AlertAway.Asleep), "alert-offline-asleep", "offline alert after a machine is asleep for this `duration`, or none (default none)")
	fs.Var(alerts.ThresholdFlag(&f.cfg.AlertAway.Quiet), "alert-offline-quiet", "offline alert after a machine is quiet on a metered connection for this `duration`, or none (default none)")
	fs.IntVar(&f.cfg.AlertOverdueIntervals, "alert-overdue", 0, "readiness alert after this many check-in intervals without a check-in (default 3)")
	fs.DurationVar(&f.cfg.AlertNeverCheckedIn, "alert-never-checked-in", 0, "readiness alert for a machine enrolled this long ago that never checked in (default 1h)")
	fs.StringVar(&f.cfg.AlertWebhook, "alert-webhook", "", "`URL` that receives every alert change as a JSON POST")
	fs.Float64Var(&f.cfg.BusyLoad, "busy-load", 0, "load per core at which a machine in a session shows busy (default 0.9)")
	fs.DurationVar(&f.cfg.GrantTTL, "grant-ttl", 0, "how long a session grant is valid before the technician connects (default 60s)")
	fs.IntVar(&f.cfg.RelayMaxSessions, "relay-max-sessions", 0, "sessions relayed at once (default 1024)")
	fs.IntVar(&f.cfg.RelayMaxPerPeer, "relay-max-per-peer", 0, "relayed sessions per technician or agent (default 16)")
	fs.Int64Var(&f.cfg.RelayMaxBytes, "relay-max-bytes", 0, "bytes one relayed session may move (default: no limit)")
	fs.DurationVar(&f.cfg.RelayMaxDuration, "relay-max-duration", 0, "life of one relayed session (default: no limit)")
	fs.Int64Var(&f.cfg.CheckInMemory, "checkin-memory", 0, "`bytes` of check-ins read at once from all agents (default 64 MiB)")
	fs.Int64Var(&f.cfg.TranscriptMemory, "transcript-memory", 0, "`bytes` of session transcripts read at once from all agents (default 64 MiB)")
	fs.Float64Var(&f.cfg.AcceptRate, "accept-rate", 0, "new bridges admitted per second from all addresses together (default 500)")
	fs.IntVar(&f.cfg.MaxHandshakes, "max-handshakes", 0, "bridges admitted in their handshake at once (default 256)")
	fs.StringVar(&f.level, "log-level", "info", "log `level`: debug, info, warn, error")
	f.gc = fs.Int("gc-percent", defaultGCPercent, "garbage-collection target `percent`, the Go runtime's GOGC (-1: off); the GOGC environment variable replaces the default")
	flagfile.DefineConfig(fs, "broker")
	return f
}

// config turns the parsed flags into a broker.Config, reading the gossip
// key file.
func (f *runFlags) config() (broker.Config, error) {
	cfg := f.cfg
	cfg.Listen = strings.Split(f.listen, ",")
	if f.join != "" {
		cfg.Join = strings.Split(f.join, ",")
	}
	if f.wanJoin != "" {
		cfg.WANJoin = strings.Split(f.wanJoin, ",")
	}
	if f.keyFile != "" {
		keys, err := cluster.LoadKeyFile(f.keyFile)
		if err != nil {
			return cfg, err
		}
		cfg.GossipKeys = keys
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(f.level)); err != nil {
		return cfg, fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	return cfg, nil
}

// run serves until SIGINT or SIGTERM.
func run(args []string) error {
	fs := newFlags("run")
	f := defineRunFlags(fs)
	definePprof(fs)
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	conf, err := loadConfig(fs)
	if err != nil {
		return err
	}
	gcGiven := conf.Origin("gc-percent").Kind != flagfile.Default
	if err := applyGCPercent(gcGiven, *f.gc, os.Getenv("GOGC")); err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	// Every TCP or WebSocket bridge is a file descriptor. Go's os package
	// lifts the soft open-file limit to the hard one at start on Unix, so
	// the broker needs no setrlimit of its own (its systemd unit sets the
	// hard limit).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	return b.Run(ctx, func(info wire.BrokerInfo, cred string) {
		fmt.Printf("broker ready peer_id=%s http=%s gossip=%s wan_gossip=%s bridge=%s\n", info.PeerID, info.HTTP, info.Gossip, info.WANGossip, strings.Join(info.Addrs, ","))
		fmt.Printf("log in as admin: meshctl login --credential %s\n", cred)
	})
}
