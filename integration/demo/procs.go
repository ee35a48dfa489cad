package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// demo owns every process it starts.
type demo struct {
	cfg        config
	logs, home string
	broker     *exec.Cmd
	agents     map[string]*exec.Cmd
	order      []string
}

func (d *demo) start(name string, args ...string) (*exec.Cmd, *os.File, error) {
	logf, err := os.Create(filepath.Join(d.logs, name+".log"))
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(filepath.Join(d.cfg.bin, args[0]), args[1:]...)
	cmd.Stderr = logf
	// Own process group: Ctrl-C reaches the demo, which stops the others
	// in order, rather than every process at once.
	cmd.SysProcAttr = ownGroup()
	return cmd, logf, nil
}

func (d *demo) startBroker(ctx context.Context) error {
	dir := filepath.Join(d.cfg.dir, "broker")
	cmd, logf, err := d.start("broker", "broker", "--data", dir, "--listen", "127.0.0.1:0", "--stun", "127.0.0.1:0",
		"--http", "127.0.0.1:0", "--name", "demo-broker", "--region", "local", "--heartbeat", "2s")
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	logf.Close()
	d.broker = cmd
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "broker ready") {
				ready <- sc.Text()
			}
		}
	}()
	select {
	case line := <-ready:
		fmt.Println("    " + line)
		return nil
	case <-time.After(20 * time.Second):
		return fmt.Errorf("broker did not become ready in 20 s; see %s", filepath.Join(d.logs, "broker.log"))
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *demo) meshctl(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(d.cfg.bin, "meshctl"), args...)
	cmd.Env = append(os.Environ(), "READYMESH_HOME="+d.home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("meshctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (d *demo) token(ctx context.Context, client string) (string, error) {
	out, err := d.meshctl(ctx, "tokens", "create", "--client", client, "--uses", "10", "--ttl", "1h", "--json")
	if err != nil {
		return "", err
	}
	var r struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return "", err
	}
	return r.Token, nil
}

func (d *demo) enroll(ctx context.Context, m machine, token string) error {
	state := filepath.Join(d.cfg.dir, "agents", m.name)
	cmd := exec.CommandContext(ctx, filepath.Join(d.cfg.bin, "sessiond"), "enroll", "--token", token,
		"--name", m.name, "--state", state)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("enrol %s: %v: %s", m.name, err, out)
	}
	args := []string{"sessiond", "run", "--state", state, "--reconnect-max", "5s", "--session-addr", "127.0.0.1:0"}
	if m.fixture != "" {
		// A fixture plays another machine: this host's sleep and
		// network are not its own.
		args = append(args, "--inventory", filepath.Join(d.cfg.fixtures, m.fixture), "--system-bus", "none")
	}
	cmd, logf, err := d.start(m.name, args...)
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent %s: %w", m.name, err)
	}
	logf.Close()
	if d.agents == nil {
		d.agents = map[string]*exec.Cmd{}
	}
	d.agents[m.name] = cmd
	d.order = append(d.order, m.name)
	return nil
}

// waitCheckedIn polls the machine card until its first check-in is stored.
func (d *demo) waitCheckedIn(ctx context.Context, m machine, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		out, err := d.meshctl(ctx, "show", m.client+"/"+m.name, "--json")
		if err == nil {
			var card struct {
				Readiness struct {
					LastCheckIn *time.Time `json:"last_check_in"`
				} `json:"readiness"`
			}
			if json.Unmarshal(out, &card) == nil && card.Readiness.LastCheckIn != nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not check in within %s; see %s", m.name, limit, filepath.Join(d.logs, m.name+".log"))
}

// stopAgent stops an agent cleanly and waits for it.
func (d *demo) stopAgent(name string) {
	cmd := d.agents[name]
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	delete(d.agents, name)
}

// stopAll stops the agents, then the broker.
func (d *demo) stopAll() {
	for _, name := range d.order {
		d.stopAgent(name)
	}
	if d.broker != nil && d.broker.Process != nil {
		d.broker.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.broker.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.broker.Process.Kill()
			<-done
		}
	}
}

func (d *demo) printQueue(ctx context.Context) {
	out, err := d.meshctl(ctx, "machines")
	fmt.Println("\nThe queue — readiness first, reachability second:")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	fmt.Printf(`
Use meshctl against this fleet from another terminal:

  export READYMESH_HOME=%s READYMESH_SESSION_ADDR=127.0.0.1:0   # sessions stay on loopback
  %s/meshctl machines
  %s/meshctl machines --readiness degraded --online
  %s/meshctl machines --pending-update KB5034441
  %s/meshctl show acme-laptop-07
  %s/meshctl show globex-kiosk-03 --json
  %s/meshctl ping %s                  # a live session: each answer with its path
  %s/meshctl connect %s --send 64MiB  # bulk over the session's path
  %s/meshctl connect %s --transport relay --hold 30s   # then: meshctl show %s

Logs are in %s.
`, d.home, d.cfg.bin, d.cfg.bin, d.cfg.bin, d.cfg.bin, d.cfg.bin,
		d.cfg.bin, hostName(), d.cfg.bin, hostName(), d.cfg.bin, hostName(), hostName(), d.logs)
	d.printConsole(ctx)
}

// printConsole prints a sign-in link to the broker's web console.
func (d *demo) printConsole(ctx context.Context) {
	out, err := d.meshctl(ctx, "console", "--json")
	var l struct {
		URL string `json:"url"`
	}
	if err != nil || json.Unmarshal(out, &l) != nil {
		fmt.Printf("\nThe web console is not available: %v %s\n", err, out)
		return
	}
	fmt.Printf(`
The web console (fleet, machine cards, live terminals over WebRTC):

  %s

The link signs you in as admin once, within 2 minutes; for a new one run
  READYMESH_HOME=%s %s/meshctl console
The demo's agents listen on loopback only, and browsers leave loopback out
of WebRTC: for the console's terminals start the browser with
  chromium --allow-loopback-in-peer-connection
`, l.URL, d.home, d.cfg.bin)
}

var nameRE = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// hostName returns this machine's name as a valid machine name.
func hostName() string {
	h, _ := os.Hostname()
	h = nameRE.ReplaceAllString(h, "-")
	h = strings.TrimLeft(h, ".-_")
	if h == "" {
		h = "this-host"
	}
	if len(h) > 64 {
		h = h[:64]
	}
	return h
}
