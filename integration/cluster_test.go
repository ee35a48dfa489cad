package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Bounds on how long a process may take for one step. They are generous:
// each is far above what the step takes on an idle machine, and only
// bounds a hang.
const (
	readyTimeout = 20 * time.Second // a broker printing its ready line
	cmdTimeout   = 30 * time.Second // one meshctl or sessiond command
	exitTimeout  = 10 * time.Second // a process exiting after SIGTERM
)

// broker is a broker process with its own data directory. restart keeps
// the directory and the bridge ports.
type broker struct {
	t         testing.TB
	name      string
	dir       string
	heartbeat time.Duration
	proc      *proc
	info      wire.BrokerInfo
	starts    int
	extra     []string // more broker flags, for every start
	// healthAdmin is the admin health signs in to the console as, made
	// on its first call.
	healthAdmin *tech
}

// startBroker starts a broker named name with its data under base.
// heartbeat zero means the broker's default.
func startBroker(t testing.TB, base, name string, heartbeat time.Duration) *broker {
	t.Helper()
	return startBrokerArgs(t, base, name, heartbeat)
}

// startBrokerArgs is startBroker with more broker flags.
func startBrokerArgs(t testing.TB, base, name string, heartbeat time.Duration, extra ...string) *broker {
	t.Helper()
	b := &broker{t: t, name: name, dir: filepath.Join(base, name), heartbeat: heartbeat, extra: extra}
	b.launch("127.0.0.1:0")
	return b
}

func (b *broker) launch(listen string) {
	t := b.t
	t.Helper()
	b.starts++
	args := []string{"--data", b.dir, "--listen", listen, "--http", "127.0.0.1:0", "--name", b.name, "--stun", "127.0.0.1:0"}
	if b.heartbeat > 0 {
		args = append(args, "--heartbeat", b.heartbeat.String())
	}
	args = append(args, b.extra...)
	b.proc = startProc(t, fmt.Sprintf("broker %s (start %d)", b.name, b.starts), nil, bins.broker, args...)
	line := b.proc.waitOutput(t, "broker ready", readyTimeout)
	raw, err := os.ReadFile(b.infoPath())
	if err != nil {
		t.Fatalf("broker %s printed %q but: %v", b.name, line, err)
	}
	var info wire.BrokerInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatalf("broker %s: broker.json: %v", b.name, err)
	}
	if info.PeerID == "" || len(info.Addrs) == 0 || info.HTTP == "" {
		t.Fatalf("broker %s: broker.json lacks peer_id, bridge_addrs or http_addr: %s", b.name, raw)
	}
	if !strings.Contains(line, "peer_id="+info.PeerID) {
		t.Fatalf("broker %s: ready line %q does not name broker.json's peer %s", b.name, line, info.PeerID)
	}
	b.info = info
}

func (b *broker) infoPath() string   { return filepath.Join(b.dir, "broker.json") }
func (b *broker) credential() string { return filepath.Join(b.dir, "admin.credential") }

// stop stops the broker cleanly and checks it exited with status 0.
func (b *broker) stop() {
	b.t.Helper()
	b.proc.signal(b.t, syscall.SIGTERM)
	if err := b.proc.wait(b.t, exitTimeout); err != nil {
		b.t.Fatalf("broker %s: exit after SIGTERM: %v", b.name, err)
	}
}

// restart starts the broker again on the same data directory and the same
// bridge ports, so enrolled agents find it where they left it.
func (b *broker) restart() {
	b.t.Helper()
	if !b.proc.exited() {
		b.t.Fatalf("broker %s: restart while it runs", b.name)
	}
	old := b.info
	var listen []string
	for _, a := range old.Addrs {
		addr, _, _ := strings.Cut(a, "/p2p/")
		listen = append(listen, addr)
	}
	b.launch(strings.Join(listen, ","))
	if b.info.PeerID != old.PeerID {
		b.t.Fatalf("broker %s: peer ID changed across restart: %s → %s", b.name, old.PeerID, b.info.PeerID)
	}
	if !sameSet(b.info.Addrs, old.Addrs) {
		b.t.Fatalf("broker %s: bridge addresses changed across restart:\n%v\n%v", b.name, old.Addrs, b.info.Addrs)
	}
}

// health is GET /healthz as an admin signed in to the web console reads
// it: a caller who has not signed in gets the status and version alone
// (TestHealthz).
type health struct {
	Status   string `json:"status"`
	Version  string `json:"version"`
	Machines int    `json:"machines"`
	Online   int    `json:"online"`
}

func (b *broker) health() (health, error) {
	if b.healthAdmin == nil {
		// A home of its own, so a test's own admin keeps its key.
		c := newTech(b.t, filepath.Dir(b.dir), "health-"+b.name)
		c.ok("login", "--credential", b.credential())
		b.healthAdmin = c
	}
	hc, err := b.consoleClient(b.healthAdmin)
	if err != nil {
		return health{}, err
	}
	resp, err := hc.Get("http://" + b.info.HTTP + "/healthz")
	if err != nil {
		return health{}, err
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return health{}, fmt.Errorf("healthz: %w", err)
	}
	return h, nil
}

// presenceEvent is a "machine online" or "machine offline" line of the
// broker's log.
type presenceEvent struct {
	at     time.Time
	msg    string // "machine online" or "machine offline"
	id     string
	reason string // why a machine went offline
}

var presenceRE = regexp.MustCompile(`^time=(\S+) level=\S+ msg="(machine online|machine offline)" .*\bid=(\S+)(?: reason=(?:"([^"]*)"|(\S+)))?`)

// presenceEvents parses the presence lines of the broker's current log.
func (b *broker) presenceEvents() []presenceEvent {
	var out []presenceEvent
	for _, line := range strings.Split(b.proc.stderr.String(), "\n") {
		m := presenceRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		out = append(out, presenceEvent{at: at, msg: m[2], id: m[3], reason: m[4] + m[5]})
	}
	return out
}

// offlineSince returns the first "machine offline" event for id logged at
// or after t (to the log's millisecond precision).
func (b *broker) offlineSince(id string, t time.Time) (presenceEvent, bool) {
	for _, e := range b.presenceEvents() {
		if e.msg == "machine offline" && e.id == id && !e.at.Before(t.Truncate(time.Millisecond)) {
			return e, true
		}
	}
	return presenceEvent{}, false
}

// tech is a meshctl user: its own READYMESH_HOME.
type tech struct {
	t    testing.TB
	name string
	home string
}

func newTech(t testing.TB, base, name string) *tech {
	return &tech{t: t, name: name, home: filepath.Join(base, "tech-"+name)}
}

// admin logs a new technician home in with b's admin credential.
func (b *broker) admin(base string) *tech {
	b.t.Helper()
	c := newTech(b.t, base, "admin-"+b.name)
	out := c.ok("login", "--credential", b.credential())
	if !strings.Contains(out, "logged in as admin") {
		b.t.Fatalf("admin login on %s: unexpected output %q", b.name, out)
	}
	return c
}

func (c *tech) run(args ...string) result {
	c.t.Helper()
	return runCmd(c.t, cmdTimeout, []string{"READYMESH_HOME=" + c.home, "READYMESH_SESSION_ADDR=127.0.0.1:0"}, bins.meshctl, args...)
}

// ok runs meshctl and fails the test unless it succeeds.
func (c *tech) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.err != nil {
		c.t.Fatalf("%s: meshctl %s: %v", c.name, strings.Join(args, " "), r)
	}
	return r.stdout
}

// fails runs meshctl, fails the test unless it exits non-zero, and returns
// its stderr.
func (c *tech) fails(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.err == nil || r.exitCode() <= 0 {
		c.t.Fatalf("%s: meshctl %s: want a non-zero exit, got %v", c.name, strings.Join(args, " "), r)
	}
	return r.stderr
}

// tryMachines runs `meshctl machines --json` with filters.
func (c *tech) tryMachines(filters ...string) ([]wire.Card, error) {
	c.t.Helper()
	r := c.run(append([]string{"machines", "--json"}, filters...)...)
	if r.err != nil {
		return nil, fmt.Errorf("meshctl machines: %v: %s", r.err, r.stderr)
	}
	var cards []wire.Card
	if err := json.Unmarshal([]byte(r.stdout), &cards); err != nil {
		return nil, fmt.Errorf("meshctl machines --json: %v\n%s", err, r.stdout)
	}
	return cards, nil
}

func (c *tech) machines(filters ...string) []wire.Card {
	c.t.Helper()
	cards, err := c.tryMachines(filters...)
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	return cards
}

// show returns `meshctl show MACHINE --json`.
func (c *tech) show(machine string) wire.Card {
	c.t.Helper()
	out := c.ok("show", machine, "--json")
	var card wire.Card
	if err := json.Unmarshal([]byte(out), &card); err != nil {
		c.t.Fatalf("meshctl show --json: %v\n%s", err, out)
	}
	return card
}

// token creates an enrolment token.
func (c *tech) token(client string, uses int, ttl time.Duration) wire.TokenResult {
	c.t.Helper()
	out := c.ok("tokens", "create", "--client", client, "--uses", strconv.Itoa(uses), "--ttl", ttl.String(), "--json")
	var r wire.TokenResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Token == "" {
		c.t.Fatalf("tokens create --json: %v\n%s", err, out)
	}
	return r
}

// agent is an enrolled sessiond with its state directory; proc is set while
// `sessiond run` was started.
type agent struct {
	interval time.Duration // check-in interval; zero means 1h
	t        testing.TB
	name     string
	client   string
	id       string
	dir      string
	fixture  string   // absolute path, or "" for the real collectors
	extra    []string // more sessiond run flags
	exe      string   // the Windows agent's sessiond.exe, when it runs under Wine
	bin      string   // the sessiond to run; "" means bins.sessiond (update tests give each agent its own)
	proc     *proc
	runs     int
}

var enrolledRE = regexp.MustCompile(`^enrolled (\S+) in client (\S+) as machine (\S+) \(broker (\S+)\)`)

// enroll enrols a new agent named name with token and fails the test if it
// is refused. fixture is a testdata file name or "".
func enroll(t testing.TB, base, token, name, fixtureName string) *agent {
	t.Helper()
	a := &agent{t: t, name: name, dir: freshDir(base, "agent-"+name)}
	if fixtureName != "" {
		a.fixture = fixture(t, fixtureName)
	}
	r := tryEnroll(t, token, name, a.dir)
	if r.err != nil {
		t.Fatalf("enroll %s: %v", name, r)
	}
	m := enrolledRE.FindStringSubmatch(r.stdout)
	if m == nil || m[1] != name {
		t.Fatalf("enroll %s: unexpected output %q", name, r.stdout)
	}
	a.client, a.id = m[2], m[3]
	return a
}

// freshDir returns base/name, or base/name-N for the first N that does not
// exist yet: a machine name may be enrolled in two clients.
func freshDir(base, name string) string {
	dir := filepath.Join(base, name)
	for n := 2; ; n++ {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			return dir
		}
		dir = filepath.Join(base, fmt.Sprintf("%s-%d", name, n))
	}
}

// tryEnroll runs `sessiond enroll` and returns what it did.
func tryEnroll(t testing.TB, token, name, dir string, extra ...string) result {
	t.Helper()
	args := append([]string{"enroll", "--token", token, "--name", name, "--state", dir}, extra...)
	return runCmd(t, cmdTimeout, nil, bins.sessiond, args...)
}

// runArgs are the arguments of `sessiond run` for a.
func (a *agent) runArgs() []string {
	interval := "1h"
	if a.interval > 0 {
		interval = a.interval.String()
	}
	args := []string{"run", "--state", a.dir, "--interval", interval, "--reconnect-max", "1s", "--session-addr", "127.0.0.1:0"}
	if a.fixture != "" {
		args = append(args, "--inventory", a.fixture)
	}
	if a.bin == "" {
		// This tree's agent: the host's sleep and metered network are
		// not the test's (the away tests give a bus of their own).
		args = append(args, "--system-bus", "none")
	}
	args = append(args, a.extra...)
	return args
}

// start starts `sessiond run`.
func (a *agent) start() {
	a.t.Helper()
	a.runs++
	bin := bins.sessiond
	if a.bin != "" {
		bin = a.bin
	}
	a.proc = startProc(a.t, fmt.Sprintf("agent %s (run %d)", a.name, a.runs), nil, bin, a.runArgs()...)
}

// stop sends SIGTERM and checks that the agent exits cleanly.
func (a *agent) stop() {
	a.t.Helper()
	a.proc.signal(a.t, syscall.SIGTERM)
	if err := a.proc.wait(a.t, exitTimeout); err != nil {
		a.t.Fatalf("agent %s: exit after SIGTERM: %v", a.name, err)
	}
}

// full is the name show accepts for a without ambiguity.
func (a *agent) full() string { return a.client + "/" + a.name }

// cardOf returns the card with id from cards.
func cardOf(cards []wire.Card, id string) (wire.Card, bool) {
	for _, c := range cards {
		if c.ID == id {
			return c, true
		}
	}
	return wire.Card{}, false
}

// names returns client/name of each card, in order.
func names(cards []wire.Card) []string {
	out := make([]string, len(cards))
	for i, c := range cards {
		out[i] = c.Client + "/" + c.Name
	}
	return out
}

// ids returns the sorted IDs of cards.
func ids(cards []wire.Card) []string {
	out := make([]string, len(cards))
	for i, c := range cards {
		out[i] = c.ID
	}
	slices.Sort(out)
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// waitOnline polls until every agent is online and has checked in.
func waitOnline(t testing.TB, c *tech, d time.Duration, agents ...*agent) []wire.Card {
	t.Helper()
	var cards []wire.Card
	poll(t, d, "agents online and checked in", func() (bool, string) {
		var err error
		if cards, err = c.tryMachines(); err != nil {
			return false, err.Error()
		}
		var missing []string
		for _, a := range agents {
			card, ok := cardOf(cards, a.id)
			if !ok || !card.Reachability.Online || card.Readiness.CheckInSeq == 0 {
				missing = append(missing, a.name)
			}
		}
		return len(missing) == 0, "waiting for " + strings.Join(missing, ", ")
	})
	return cards
}
