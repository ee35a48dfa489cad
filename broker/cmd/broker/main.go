// Command broker runs a readymesh regional broker.
//
//	broker --data DIR [--listen ADDR[,ADDR]] [--http ADDR] [--name N] [--region R]
//
// Once it serves, it writes DIR/broker.json and DIR/admin.credential and
// prints one line starting with "broker ready" to stdout.
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
	"github.com/readymesh/readymesh/peer/wire"
)

func main() {
	cfg := broker.Config{}
	var listen, level string
	flag.StringVar(&cfg.DataDir, "data", "/var/lib/readymesh/broker", "data `dir`ectory: key, store, broker.json, admin.credential")
	flag.StringVar(&listen, "listen", "0.0.0.0:7400", "bridge listen `addr`esses, comma-separated: host:port (QUIC+TCP on port, WebSocket on port+1; port 0 picks free ports) or multiaddrs")
	flag.StringVar(&cfg.HTTP, "http", "127.0.0.1:7480", "health and metrics `addr`ess, or off")
	flag.StringVar(&cfg.Name, "name", "", "broker `name` shown on machine cards (default: host name)")
	flag.StringVar(&cfg.Region, "region", "default", "`region` label")
	flag.DurationVar(&cfg.Heartbeat, "heartbeat", 0, "heartbeat `interval` agents are told to use (default 5s); 3 missed heartbeats mark a machine offline")
	flag.IntVar(&cfg.MaxSnapshot, "max-snapshot", 0, "largest accepted check-in in `bytes` (default 1 MiB)")
	flag.IntVar(&cfg.HistoryLimit, "history", 0, "check-in summaries kept per machine (default 100)")
	flag.DurationVar(&cfg.Readiness.Grace, "stale-grace", 0, "a machine is stale after 2 check-in intervals plus this `grace` (default 10m)")
	flag.IntVar(&cfg.Readiness.MaxPendingUpdates, "max-pending-updates", 0, "more pending updates than this `count` make a machine degraded (default 10)")
	flag.DurationVar(&cfg.Readiness.MaxPendingAge, "max-pending-age", 0, "an update pending longer than this `age` makes a machine degraded (default 720h)")
	flag.StringVar(&cfg.Readiness.AgentVersion, "agent-version", "", "the agent `version` being rolled out: older agents are behind (default: the newest any agent reports)")
	flag.StringVar(&level, "log-level", "info", "log `level`: debug, info, warn, error")
	flag.Parse()
	cfg.Listen = strings.Split(listen, ",")
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fatal(fmt.Errorf("--log-level: %w", err))
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	raiseFileLimit()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := broker.New(cfg)
	if err != nil {
		fatal(err)
	}
	err = b.Run(ctx, func(info wire.BrokerInfo, cred string) {
		fmt.Printf("broker ready peer_id=%s http=%s bridge=%s\n", info.PeerID, info.HTTP, strings.Join(info.Addrs, ","))
		fmt.Printf("log in as admin: meshctl login --credential %s\n", cred)
	})
	if err != nil {
		fatal(err)
	}
}

// raiseFileLimit lifts the soft open-file limit to the hard one: every TCP
// or WebSocket bridge is a file descriptor.
func raiseFileLimit() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "broker:", err)
	os.Exit(1)
}
