package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/sessiond/service/systemd"
)

// execStart returns the command of the ExecStart= line in a printed
// unit, as systemd would run it.
func execStart(t *testing.T, printed string) []string {
	t.Helper()
	for _, line := range strings.Split(printed, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			argv, err := systemd.SplitExec(v)
			if err != nil {
				t.Fatalf("ExecStart=%s: %v", v, err)
			}
			return argv
		}
	}
	t.Fatalf("no ExecStart= line in\n%s", printed)
	return nil
}

// TestServiceUnitsRun: the command lines the generated systemd units run
// serve. The broker unit's ExecStart, with its data directory moved to a
// temporary one and loopback addresses given to install, serves /healthz;
// the agent unit's ExecStart, for a state directory enrolled against that
// broker, brings the agent online, and the agent exits cleanly on
// SIGTERM (systemd's stop), so Restart=on-failure leaves it stopped.
// Only the binary's path differs from the unit's: the tests' binaries are
// not in /opt.
func TestServiceUnitsRun(t *testing.T) {
	needBinaries(t)
	base := testDir(t)

	r := runCmd(t, cmdTimeout, nil, bins.broker, "install", "--print", "--name", "unit-broker",
		"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--stun", "127.0.0.1:0")
	if r.err != nil {
		t.Fatalf("broker install --print: %v", r)
	}
	argv := execStart(t, r.stdout)
	if want := []string{"/opt/readymesh/bin/broker", "run", "--data", "/var/lib/readymesh/broker"}; !slices.Equal(argv[:4], want) {
		t.Fatalf("broker unit runs %q, want it to start with %q", argv, want)
	}
	b := &broker{t: t, name: "unit-broker", dir: filepath.Join(base, "unit-broker")}
	argv[3] = b.dir
	b.proc = startProc(t, "broker (unit's ExecStart)", nil, bins.broker, argv[1:]...)
	b.proc.waitOutput(t, "broker ready", readyTimeout)
	raw, err := os.ReadFile(b.infoPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &b.info); err != nil {
		t.Fatalf("broker.json: %v", err)
	}
	health, err := getHealthz(http.DefaultClient, b)
	if err != nil || health["status"] != "ok" {
		t.Fatalf("/healthz of the broker the unit runs = %v, %v; want status ok", health, err)
	}

	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	a := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "svc-01", "linux-ready.json")
	r = runCmd(t, cmdTimeout, nil, bins.sessiond, "install", "--print", "--os", "linux", "--state", a.dir,
		"--inventory", a.fixture, "--reconnect-max", "1s", "--session-addr", "127.0.0.1:0")
	if r.err != nil {
		t.Fatalf("sessiond install --print: %v", r)
	}
	argv = execStart(t, r.stdout)
	if want := []string{"/opt/readymesh/bin/sessiond", "run", "--state", a.dir}; !slices.Equal(argv[:4], want) {
		t.Fatalf("agent unit runs %q, want it to start with %q", argv, want)
	}
	a.proc = startProc(t, "agent (unit's ExecStart)", nil, bins.sessiond, argv[1:]...)
	cards := waitOnline(t, admin, 30*time.Second, a)
	if c, _ := cardOf(cards, a.id); c.Name != "svc-01" || c.Client != "acme" {
		t.Errorf("card %+v, want acme/svc-01", c)
	}
	a.proc.signal(t, syscall.SIGTERM)
	if err := a.proc.wait(t, exitTimeout); err != nil {
		t.Errorf("the agent's exit after SIGTERM: %v; want status 0, which Restart=on-failure does not restart", err)
	}
}
