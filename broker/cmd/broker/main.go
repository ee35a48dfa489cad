// Command broker runs a readymesh regional broker.
//
//	broker --data DIR [--listen ADDR[,ADDR]] [--http ADDR] [--http-… limits] [--name N] [--region R]
//	       [--gossip ADDR --join ADDR[,ADDR] --gossip-key-file FILE]
//	broker gossip-key FILE
//
// Once it serves, it writes DIR/broker.json and DIR/admin.credential and
// prints one line starting with "broker ready" to stdout.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/readymesh/readymesh/broker"
	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/peer/wire"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "gossip-key" {
		if err := writeGossipKey(os.Args[2]); err != nil {
			fatal(err)
		}
		return
	}
	cfg := broker.Config{}
	var listen, level, join, wanJoin, keyFile string
	flag.StringVar(&cfg.DataDir, "data", "/var/lib/readymesh/broker", "data `dir`ectory: key, store, broker.json, admin.credential")
	flag.StringVar(&listen, "listen", "0.0.0.0:7400", "bridge listen `addr`esses, comma-separated: host:port (QUIC+TCP on port, WebSocket on port+1; port 0 picks free ports) or multiaddrs")
	flag.StringVar(&cfg.HTTP, "http", "127.0.0.1:7480", "health, metrics and web console `addr`ess, or off")
	flag.StringVar(&cfg.ConsoleURL, "console-url", "", "the web console's `URL` as browsers reach it (e.g. behind a TLS proxy), for meshctl console's links (default: http:// and --http)")
	flag.DurationVar(&cfg.HTTPReadHeaderTimeout, "http-read-header-timeout", 0, "time to read a request's headers on --http (default 5s)")
	flag.DurationVar(&cfg.HTTPReadTimeout, "http-read-timeout", 0, "time to read a whole request, body included, on --http; the connection is closed after it (default 20s)")
	flag.DurationVar(&cfg.HTTPWriteTimeout, "http-write-timeout", 0, "time to write a response on --http; the console's event stream bounds each event instead (default 30s)")
	flag.DurationVar(&cfg.HTTPIdleTimeout, "http-idle-timeout", 0, "time a keep-alive connection on --http may wait for its next request (default 60s)")
	flag.IntVar(&cfg.HTTPMaxHeaderBytes, "http-max-header-bytes", 0, "largest request header on --http, in `bytes` (default 32 KiB)")
	flag.IntVar(&cfg.HTTPMaxConns, "http-max-conns", 0, "HTTP connections open at once; more are closed at accept (default 4096)")
	flag.IntVar(&cfg.HTTPMaxConnsPerIP, "http-max-conns-per-ip", 0, "HTTP connections open at once from one address (IPv6: one /64); behind a proxy, set it to --http-max-conns (default 256)")
	flag.StringVar(&cfg.Name, "name", "", "broker `name` shown on machine cards (default: host name)")
	flag.StringVar(&cfg.Region, "region", "default", "`region` label")
	flag.StringVar(&cfg.Gossip, "gossip", "", "cluster gossip `addr`ess ip:port (UDP and TCP; port 0 picks one); empty runs the broker alone")
	flag.StringVar(&join, "join", "", "gossip `addr`esses of brokers to join, comma-separated")
	flag.StringVar(&keyFile, "gossip-key-file", "", "`file` of gossip keys (make one with: broker gossip-key FILE); required to join a cluster")
	flag.StringVar(&cfg.GossipProfile, "gossip-profile", "lan", "timing of the --gossip pool: lan (one region), wan (one pool across regions) or local (tests)")
	flag.StringVar(&cfg.WANGossip, "wan-gossip", "", "`addr`ess of a second pool that every broker of every region joins with WAN timing; --gossip then holds this region's brokers only")
	flag.StringVar(&wanJoin, "wan-join", "", "WAN-pool `addr`esses of brokers to join, comma-separated")
	flag.StringVar(&cfg.WANProfile, "wan-gossip-profile", "wan", "timing of the --wan-gossip pool: wan, or local for tests")
	flag.DurationVar(&cfg.Heartbeat, "heartbeat", 0, "heartbeat `interval` agents are told to use (default 5s); 3 missed heartbeats mark a machine offline")
	flag.IntVar(&cfg.MaxSnapshot, "max-snapshot", 0, "largest accepted check-in in `bytes` (default 1 MiB)")
	flag.IntVar(&cfg.HistoryLimit, "history", 0, "check-in summaries kept per machine (default 100)")
	flag.DurationVar(&cfg.Readiness.Grace, "stale-grace", 0, "a machine is stale after 2 check-in intervals plus this `grace` (default 10m)")
	flag.IntVar(&cfg.Readiness.MaxPendingUpdates, "max-pending-updates", 0, "more pending updates than this `count` make a machine degraded (default 10)")
	flag.DurationVar(&cfg.Readiness.MaxPendingAge, "max-pending-age", 0, "an update pending longer than this `age` makes a machine degraded (default 720h)")
	flag.StringVar(&cfg.Readiness.AgentVersion, "agent-version", "", "the agent `version` being rolled out: older agents are behind (default: for each client, the newest its own agents report)")
	flag.StringVar(&cfg.STUN, "stun", ":3478", "UDP `addr`ess of the STUN server peers learn their public session address from, or off")
	flag.StringVar(&cfg.TURNIP, "turn-ip", "", "`address` TURN relay candidates carry, the one peers reach this broker at (default: the --stun IP when specific)")
	flag.DurationVar(&cfg.AlertEvery, "alert-every", 0, "how often alerts are evaluated (default 30s)")
	flag.DurationVar(&cfg.AlertOffline, "alert-offline", 0, "reachability alert after a machine is offline this long (default 15m)")
	flag.IntVar(&cfg.AlertOverdueIntervals, "alert-overdue", 0, "readiness alert after this many check-in intervals without a check-in (default 3)")
	flag.DurationVar(&cfg.AlertNeverCheckedIn, "alert-never-checked-in", 0, "readiness alert for a machine enrolled this long ago that never checked in (default 1h)")
	flag.StringVar(&cfg.AlertWebhook, "alert-webhook", "", "`URL` that receives every alert change as a JSON POST")
	flag.Float64Var(&cfg.BusyLoad, "busy-load", 0, "load per core at which a machine in a session shows busy (default 0.9)")
	flag.DurationVar(&cfg.GrantTTL, "grant-ttl", 0, "how long a session grant is valid before the technician connects (default 60s)")
	flag.IntVar(&cfg.RelayMaxSessions, "relay-max-sessions", 0, "sessions relayed at once (default 1024)")
	flag.IntVar(&cfg.RelayMaxPerPeer, "relay-max-per-peer", 0, "relayed sessions per technician or agent (default 16)")
	flag.Int64Var(&cfg.RelayMaxBytes, "relay-max-bytes", 0, "bytes one relayed session may move (default: no limit)")
	flag.DurationVar(&cfg.RelayMaxDuration, "relay-max-duration", 0, "life of one relayed session (default: no limit)")
	flag.Int64Var(&cfg.CheckInMemory, "checkin-memory", 0, "`bytes` of check-ins read at once from all agents (default 64 MiB)")
	flag.Int64Var(&cfg.TranscriptMemory, "transcript-memory", 0, "`bytes` of session transcripts read at once from all agents (default 64 MiB)")
	flag.Float64Var(&cfg.AcceptRate, "accept-rate", 0, "new bridges admitted per second from all addresses together (default 500)")
	flag.IntVar(&cfg.MaxHandshakes, "max-handshakes", 0, "bridges admitted in their handshake at once (default 256)")
	flag.StringVar(&level, "log-level", "info", "log `level`: debug, info, warn, error")
	gc := flag.Int("gc-percent", defaultGCPercent, "garbage-collection target `percent`, the Go runtime's GOGC (-1: off); the GOGC environment variable replaces the default")
	flag.Parse()
	gcGiven := false
	flag.Visit(func(f *flag.Flag) { gcGiven = gcGiven || f.Name == "gc-percent" })
	if err := applyGCPercent(gcGiven, *gc, os.Getenv("GOGC")); err != nil {
		fatal(err)
	}
	cfg.Listen = strings.Split(listen, ",")
	if join != "" {
		cfg.Join = strings.Split(join, ",")
	}
	if wanJoin != "" {
		cfg.WANJoin = strings.Split(wanJoin, ",")
	}
	if keyFile != "" {
		keys, err := cluster.LoadKeyFile(keyFile)
		if err != nil {
			fatal(err)
		}
		cfg.GossipKeys = keys
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fatal(fmt.Errorf("--log-level: %w", err))
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))

	// Every TCP or WebSocket bridge is a file descriptor. Go's os package
	// lifts the soft open-file limit to the hard one at start on Unix, so
	// the broker needs no setrlimit of its own (its systemd unit sets the
	// hard limit).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := broker.New(cfg)
	if err != nil {
		fatal(err)
	}
	err = b.Run(ctx, func(info wire.BrokerInfo, cred string) {
		fmt.Printf("broker ready peer_id=%s http=%s gossip=%s wan_gossip=%s bridge=%s\n", info.PeerID, info.HTTP, info.Gossip, info.WANGossip, strings.Join(info.Addrs, ","))
		fmt.Printf("log in as admin: meshctl login --credential %s\n", cred)
	})
	if err != nil {
		fatal(err)
	}
}

// writeGossipKey creates a key file with one new 32-byte key, mode 0600.
// Copy the same file to every broker of the cluster.
func writeGossipKey(path string) error {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("gossip-key: %w", err)
	}
	if _, err := fmt.Fprintf(f, "# readymesh gossip key: copy this file to every broker (mode 0600)\n%s\n",
		base64.StdEncoding.EncodeToString(key[:])); err != nil {
		f.Close()
		return fmt.Errorf("gossip-key: %w", err)
	}
	return f.Close()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "broker:", err)
	os.Exit(1)
}
