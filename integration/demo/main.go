// Command demo runs a small readymesh fleet on this machine, for `make
// demo`: one broker on loopback with its data under .demo, two clients,
// one real agent for this host and four agents playing other machines from
// fixtures (a Windows laptop whose approval expired, a server with an
// outdated agent, a web server with pending updates piling up, and a kiosk
// that is stopped after its first check-in: ready, but offline).
//
// It prints the queue and how to use meshctl against the fleet, then stays
// up until Ctrl-C and stops every process it started. With -once it exits
// after printing the queue, which is how the integration tests run it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin", "`dir`ectory with the broker, sessiond and meshctl binaries")
	flag.StringVar(&cfg.dir, "dir", ".demo", "`dir`ectory for the demo's state; emptied at start")
	flag.StringVar(&cfg.fixtures, "fixtures", "integration/demo/fixtures", "`dir`ectory with the fixture machines")
	flag.BoolVar(&cfg.once, "once", false, "exit after printing the queue")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type config struct {
	bin, dir, fixtures string
	once               bool
}

// machine is one demo agent.
type machine struct {
	name, client, fixture string
	stopAfterCheckIn      bool
}

var fleet = []machine{
	{name: "acme-laptop-07", client: "acme", fixture: "acme-laptop-07.json"},
	{name: "acme-fs01", client: "acme", fixture: "acme-fs01.json"},
	{name: "globex-web-02", client: "globex", fixture: "globex-web-02.json"},
	{name: "globex-kiosk-03", client: "globex", fixture: "globex-kiosk-03.json", stopAfterCheckIn: true},
}

func run(ctx context.Context, cfg config) error {
	for _, p := range []*string{&cfg.bin, &cfg.dir, &cfg.fixtures} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if err := os.RemoveAll(cfg.dir); err != nil {
		return err
	}
	d := &demo{cfg: cfg, logs: filepath.Join(cfg.dir, "logs"), home: filepath.Join(cfg.dir, "technician")}
	if err := os.MkdirAll(d.logs, 0o700); err != nil {
		return err
	}
	defer d.stopAll()
	if err := d.setUp(ctx); err != nil {
		return err
	}
	d.printQueue(ctx)
	if cfg.once {
		return nil
	}
	fmt.Println("\nThe fleet stays up until Ctrl-C.")
	<-ctx.Done()
	fmt.Println("\nstopping…")
	return nil
}

func (d *demo) setUp(ctx context.Context) error {
	step("starting a broker on loopback (data in %s)", filepath.Join(d.cfg.dir, "broker"))
	if err := d.startBroker(ctx); err != nil {
		return err
	}
	step("logging in as admin and creating clients acme and globex")
	if _, err := d.meshctl(ctx, "login", "--credential", filepath.Join(d.cfg.dir, "broker", "admin.credential")); err != nil {
		return err
	}
	tokens := map[string]string{}
	for _, c := range []string{"acme", "globex"} {
		if _, err := d.meshctl(ctx, "clients", "create", c); err != nil {
			return err
		}
		tok, err := d.token(ctx, c)
		if err != nil {
			return err
		}
		tokens[c] = tok
	}
	host := hostName()
	step("enrolling this machine (%s, real collectors) and four fixture machines", host)
	all := append([]machine{{name: host, client: "acme"}}, fleet...)
	for _, m := range all {
		if err := d.enroll(ctx, m, tokens[m.client]); err != nil {
			return err
		}
	}
	step("waiting for every agent's first check-in")
	for _, m := range all {
		if err := d.waitCheckedIn(ctx, m, 90*time.Second); err != nil {
			return err
		}
		if m.stopAfterCheckIn {
			step("stopping %s after its first check-in: ready, but offline", m.name)
			d.stopAgent(m.name)
		}
	}
	return nil
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}
