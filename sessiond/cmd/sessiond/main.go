// Command sessiond is the readymesh agent.
//
//	sessiond enroll --token T --name NAME --state DIR [--broker ADDR]
//	sessiond run --state DIR [--inventory FILE] [--interval 1h]
//	sessiond checkin --state DIR
//	sessiond status --state DIR [--json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond"
)

const usage = `usage:
  sessiond enroll --token T --name NAME --state DIR [--broker ADDR]
  sessiond run --state DIR [--inventory FILE] [--interval 1h] [--consent never|window|session]
  sessiond checkin --state DIR
  sessiond status --state DIR [--json]
  sessiond requests --state DIR [--json]   session requests waiting for your approval
  sessiond approve --state DIR (REQUEST|--all)
  sessiond deny --state DIR REQUEST
  sessiond pause-input --state DIR     (resume-input): hold back all remote input, e.g. during a call
  sessiond version`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "enroll":
		err = enroll(ctx, args)
	case "run":
		err = run(ctx, args)
	case "checkin":
		err = checkin(ctx, args)
	case "status":
		err = status(ctx, args)
	case "pause-input", "resume-input":
		err = pauseInput(ctx, cmd, args)
	case "requests":
		err = requests(ctx, args)
	case "approve", "deny":
		err = answer(ctx, cmd, args)
	case "version":
		fmt.Println(sessiond.Version)
	case "help", "-h", "--help":
		fmt.Println(usage)
	default:
		fmt.Fprintf(os.Stderr, "sessiond: unknown command %q\n%s\n", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiond:", err)
		os.Exit(1)
	}
}

func flags(name string) *flag.FlagSet {
	return flag.NewFlagSet("sessiond "+name, flag.ExitOnError)
}

func enroll(ctx context.Context, args []string) error {
	fs := flags("enroll")
	var cfg sessiond.EnrollConfig
	fs.StringVar(&cfg.Token, "token", "", "enrolment `token` from meshctl tokens create")
	fs.StringVar(&cfg.Name, "name", "", "machine `name` within its client")
	fs.StringVar(&cfg.StateDir, "state", "", "state `dir`ectory")
	fs.StringVar(&cfg.Broker, "broker", "", "dial this broker instead (broker.json path or multiaddr): the issuing broker elsewhere, or another broker of its cluster")
	fs.Parse(args)
	if cfg.Token == "" || cfg.Name == "" || cfg.StateDir == "" {
		return fmt.Errorf("enroll needs --token, --name and --state")
	}
	e, err := sessiond.Enroll(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("enrolled %s in client %s as machine %s (broker %s)\n", e.Name, e.Client, e.MachineID, e.Broker.PeerID)
	return nil
}

func run(ctx context.Context, args []string) error {
	fs := flags("run")
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
	fs.Parse(args)
	if cfg.StateDir == "" {
		return fmt.Errorf("run needs --state")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	a, err := sessiond.New(cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func checkin(ctx context.Context, args []string) error {
	fs := flags("checkin")
	dir := fs.String("state", "", "state `dir`ectory of the running agent")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("checkin needs --state")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	seq, reason, _, err := sessiond.Control(ctx, *dir, "checkin")
	if err != nil {
		return fmt.Errorf("check-in: %w", err)
	}
	fmt.Printf("checked in: seq %d, reason %s\n", seq, reason)
	return nil
}

func status(ctx context.Context, args []string) error {
	fs := flags("status")
	dir := fs.String("state", "", "state `dir`ectory of the running agent")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("status needs --state")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _, st, err := sessiond.Control(ctx, *dir, "status")
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	bridge := "down"
	if st.BridgeUp {
		bridge = "up"
	}
	fmt.Printf("machine   %s (%s) in client %s\nbroker    %s, bridge %s\n", st.Name, st.MachineID, st.Client, st.Broker, bridge)
	if st.LastCheckIn != nil {
		fmt.Printf("check-in  seq %d, %s, %s\n", st.LastCheckIn.Seq, st.LastCheckIn.Reason, st.LastCheckIn.At.Format(time.RFC3339))
	} else {
		fmt.Println("check-in  none yet")
	}
	fmt.Printf("sessions  %d live (UDP port %d)\n", len(st.Sessions), st.SessionPort)
	for _, s := range st.Sessions {
		fmt.Printf("          %s  %s  %s  %s  since %s\n", s.Session[:8], s.Technician, s.Mode, s.Path, s.Started.Format(time.RFC3339))
	}
	return nil
}

// pauseInput pauses or resumes remote input on the running agent.
func pauseInput(ctx context.Context, op string, args []string) error {
	fs := flags(op)
	dir := fs.String("state", "", "state `dir`ectory of the running agent")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("%s needs --state", op)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _, st, err := sessiond.Control(ctx, *dir, op)
	if err != nil {
		return err
	}
	if st.InputPaused {
		fmt.Printf("remote input paused on %s: technicians see output, their input is refused\n", st.Name)
	} else {
		fmt.Printf("remote input resumed on %s\n", st.Name)
	}
	return nil
}

// requests lists the session requests waiting for approval.
func requests(ctx context.Context, args []string) error {
	fs := flags("requests")
	dir := fs.String("state", "", "state `dir`ectory of the running agent")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("requests needs --state")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := sessiond.ControlArg(ctx, *dir, "requests", "")
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if r.Requests == nil {
			r.Requests = []wire.ConsentRequest{}
		}
		return enc.Encode(r.Requests)
	}
	if len(r.Requests) == 0 {
		fmt.Println("no session requests are waiting")
		return nil
	}
	for _, q := range r.Requests {
		fmt.Printf("%s  %s asks for a %s session (asked %s ago)\n", q.ID, q.Technician, q.Mode, time.Since(q.Asked).Round(time.Second))
	}
	fmt.Println("approve with: sessiond approve --state DIR REQUEST   (or --all); refuse with: sessiond deny --state DIR REQUEST")
	return nil
}

// answer approves or denies session requests.
func answer(ctx context.Context, op string, args []string) error {
	fs := flags(op)
	dir := fs.String("state", "", "state `dir`ectory of the running agent")
	all := fs.Bool("all", false, "every waiting request (approve only)")
	fs.Parse(args)
	id := fs.Arg(0)
	switch {
	case *dir == "":
		return fmt.Errorf("%s needs --state", op)
	case id == "" && !(*all && op == "approve"):
		return fmt.Errorf("%s needs a request ID (see sessiond requests)", op)
	case id != "" && *all:
		return fmt.Errorf("%s takes a request ID or --all, not both", op)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := sessiond.ControlArg(ctx, *dir, op, id)
	if err != nil {
		return err
	}
	verb := "approved"
	if op == "deny" {
		verb = "denied"
	}
	for _, q := range r.Requests {
		fmt.Printf("%s %s: %s session for %s\n", verb, q.ID, q.Mode, q.Technician)
	}
	return nil
}
