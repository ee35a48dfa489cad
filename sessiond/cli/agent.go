package cli

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/readymesh/readymesh/sessiond"
)

// enroll turns an enrolment token into a machine record and the agent's
// state directory.
func (e *env) enroll(name string, args []string) error {
	fs := e.flags(name)
	var cfg sessiond.EnrollConfig
	fs.StringVar(&cfg.Token, "token", "", "enrolment `token` from meshctl tokens create")
	fs.StringVar(&cfg.Name, "name", "", "machine `name` within its client")
	fs.StringVar(&cfg.StateDir, "state", "", "state `dir`ectory")
	fs.StringVar(&cfg.Broker, "broker", "", "dial this broker instead (broker.json path or multiaddr): the issuing broker elsewhere, or another broker of its cluster")
	if err := parse(fs, args); err != nil {
		return err
	}
	if cfg.Token == "" || cfg.Name == "" || cfg.StateDir == "" {
		return fmt.Errorf("enroll needs --token, --name and --state")
	}
	en, err := sessiond.Enroll(e.ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "enrolled %s in client %s as machine %s (broker %s)\n", en.Name, en.Client, en.MachineID, en.Broker.PeerID)
	return nil
}

// run runs the agent until the context ends (SIGINT or SIGTERM in the
// binary).
func (e *env) run(name string, args []string) error {
	fs := e.flags(name)
	var cfg sessiond.Config
	var level string
	fs.StringVar(&cfg.StateDir, "state", "", "state `dir`ectory")
	fs.StringVar(&cfg.Inventory, "inventory", "", "JSON `file` that replaces the machine collectors (demo and test machines)")
	fs.DurationVar(&cfg.CheckInInterval, "interval", time.Hour, "check-in `interval`")
	fs.StringVar(&cfg.ConsentPolicy, "consent", "never", "consent `policy` until a technician with admin rights sets one: never, window or session")
	fs.DurationVar(&cfg.ReconnectMax, "reconnect-max", 30*time.Second, "cap on the reconnect backoff")
	fs.DurationVar(&cfg.ConsentWindow, "consent-window", 8*time.Hour, "how long one approval lasts under the window policy")
	fs.DurationVar(&cfg.ConsentTimeout, "consent-timeout", 2*time.Minute, "how long a session request waits for an answer at the machine")
	fs.BoolVar(&cfg.RecordInput, "record-input", false, "keep technicians' keystrokes in terminal transcripts (off: they may hold passwords)")
	fs.StringVar(&cfg.SessionUser, "session-user", "", "`account` interactive sessions run as (default: nobody when run as root); elevated sessions run as the agent's user")
	fs.StringVar(&cfg.SessionAddr, "session-addr", "", "UDP `address` of the live-session socket (default: any address, a port the kernel picks)")
	fs.StringVar(&level, "log-level", "info", "log `level`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if cfg.StateDir == "" {
		return fmt.Errorf("run needs --state")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: lv}))
	a, err := sessiond.New(cfg)
	if err != nil {
		return err
	}
	return a.Run(e.ctx)
}
