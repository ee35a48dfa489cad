package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// relayBytes reads readymesh_relay_bytes_total from the broker's metrics.
func (b *broker) relayBytes(t *testing.T) float64 {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + b.info.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "readymesh_relay_bytes_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatal("no readymesh_relay_bytes_total in /metrics")
	return 0
}

type pingResult struct {
	Pongs []struct {
		Path  string  `json:"path"`
		RTTMs float64 `json:"rtt_ms"`
		Error string  `json:"error"`
	} `json:"pongs"`
	Lost int    `json:"lost"`
	Path string `json:"path"`
}

type connectResult struct {
	Session string  `json:"session"`
	Path    string  `json:"path"`
	SetupMs float64 `json:"setup_ms"`
	Sent    int64   `json:"sent_bytes"`
	Mbps    float64 `json:"send_mbit_s"`
}

// TestLiveSessions runs the session flow with the real binaries on
// loopback: ping and bulk sends over direct QUIC and over the broker's
// relay, with the broker's relay counter showing which path carried the
// bytes; the machine card showing the open session and its path; and the
// broker refusing what scopes, modes and reachability do not allow.
func TestLiveSessions(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBroker(t, base, "sess", 300*time.Millisecond)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	admin.ok("clients", "create", "globex")
	tok := admin.token("acme", 2, time.Hour).Token
	pc := enroll(t, base, tok, "pc-01", "windows-ready.json")
	idle := enroll(t, base, tok, "pc-02", "linux-ready.json")
	pc.start()
	waitOnline(t, admin, 20*time.Second, pc)

	t.Run("ping direct", func(t *testing.T) {
		var r pingResult
		out := admin.ok("ping", pc.full(), "-c", "3", "--interval", "50ms", "--transport", "quic", "--json")
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if r.Lost != 0 || len(r.Pongs) != 3 || !strings.HasPrefix(r.Path, wire.PathDirectQUIC+" 127.0.0.1:") {
			t.Fatalf("ping: %s", out)
		}
		human := admin.ok("ping", pc.full(), "-c", "1", "--transport", "quic")
		if !strings.Contains(human, "pong from "+pc.full()+" via direct-quic 127.0.0.1:") {
			t.Fatalf("ping output: %q", human)
		}
	})
	t.Run("ping relayed", func(t *testing.T) {
		out := admin.ok("ping", pc.full(), "-c", "2", "--interval", "50ms", "--transport", "relay")
		if !strings.Contains(out, "via relayed via sess in") {
			t.Fatalf("ping output: %q", out)
		}
	})
	send := func(transport string) (connectResult, float64) {
		before := b.relayBytes(t)
		out := admin.ok("connect", pc.full(), "--transport", transport, "--send", "16MiB", "--json")
		var r connectResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if r.Sent != 16<<20 {
			t.Fatalf("connect --send: %s", out)
		}
		return r, b.relayBytes(t) - before
	}
	t.Run("webrtc", func(t *testing.T) {
		out := admin.ok("ping", pc.full(), "-c", "2", "--interval", "50ms", "--transport", "webrtc")
		if !strings.Contains(out, "via direct-webrtc") {
			t.Fatalf("ping output: %q", out)
		}
		r, relayed := send(wire.TransportWebRTC)
		t.Logf("webrtc: %s, %.0f Mbit/s, set up in %.1f ms", r.Path, r.Mbps, r.SetupMs)
		if !strings.HasPrefix(r.Path, wire.PathDirectWebRTC) || relayed != 0 {
			t.Errorf("webrtc session: path %s, %v bytes through the QUIC relay", r.Path, relayed)
		}
	})
	t.Run("bulk over each path, checked at the relay", func(t *testing.T) {
		direct, relayedByDirect := send(wire.TransportQUIC)
		relayed, relayedByRelay := send(wire.TransportRelay)
		t.Logf("direct: %s, %.0f Mbit/s, set up in %.1f ms; relay moved %.0f bytes", direct.Path, direct.Mbps, direct.SetupMs, relayedByDirect)
		t.Logf("relayed: %s, %.0f Mbit/s, set up in %.1f ms; relay moved %.0f bytes", relayed.Path, relayed.Mbps, relayed.SetupMs, relayedByRelay)
		if !strings.HasPrefix(direct.Path, wire.PathDirectQUIC) || relayedByDirect != 0 {
			t.Errorf("direct session: path %s, %v bytes through the relay", direct.Path, relayedByDirect)
		}
		if relayed.Path != "relayed via sess" || relayedByRelay < 16<<20 {
			t.Errorf("relayed session: path %s, only %v bytes through the relay", relayed.Path, relayedByRelay)
		}
	})
	t.Run("card shows the open session", func(t *testing.T) {
		hold := startProc(t, "meshctl connect", []string{"READYMESH_HOME=" + admin.home, "READYMESH_SESSION_ADDR=127.0.0.1:0"},
			bins.meshctl, "connect", pc.full(), "--mode", "interactive", "--transport", "quic", "--hold", "20s")
		hold.waitOutput(t, "session ", 20*time.Second)
		poll(t, 10*time.Second, "card shows the session", func() (bool, string) {
			c := admin.show(pc.full())
			if c.Session == nil {
				return false, "no session part"
			}
			ok := c.Session.State == "active" && c.Session.Mode == wire.ModeInteractive &&
				strings.HasPrefix(c.Session.Path, wire.PathDirectQUIC) && len(c.Session.Technicians) == 1 && c.Session.Technicians[0] == "admin"
			return ok, fmt.Sprintf("%+v", *c.Session)
		})
		hold.signal(t, 15)
		hold.wait(t, exitTimeout)
		poll(t, 10*time.Second, "card drops the ended session", func() (bool, string) {
			c := admin.show(pc.full())
			return c.Session == nil, fmt.Sprintf("%+v", c.Session)
		})
	})
	t.Run("refusals", func(t *testing.T) {
		out := admin.ok("technicians", "add", "ro", "--clients", "acme", "--modes", "read-only", "--json")
		var tr wire.TechnicianResult
		if err := json.Unmarshal([]byte(out), &tr); err != nil {
			t.Fatal(err)
		}
		ro := newTech(t, base, "ro")
		ro.ok("login", "--credential", tr.LoginToken)
		if msg := ro.fails("connect", pc.full(), "--mode", "interactive", "--hold", "1s"); !strings.Contains(msg, "may not open interactive sessions") {
			t.Errorf("mode refusal: %q", msg)
		}
		ro.ok("ping", pc.full(), "-c", "1")
		if msg := ro.fails("exec", pc.full(), "--mode", "elevated", "--", "id"); !strings.Contains(msg, "may not open elevated sessions") {
			t.Errorf("elevated without the right: %q", msg)
		}
		out = admin.ok("technicians", "add", "gx", "--clients", "globex", "--modes", "read-only,interactive", "--json")
		json.Unmarshal([]byte(out), &tr)
		gx := newTech(t, base, "gx")
		gx.ok("login", "--credential", tr.LoginToken)
		if msg := gx.fails("ping", pc.full(), "-c", "1"); !strings.Contains(msg, "no machine") {
			t.Errorf("scope refusal: %q", msg)
		}
		if msg := gx.fails("ping", pc.id, "-c", "1"); !strings.Contains(msg, "no machine") {
			t.Errorf("scope refusal by ID: %q", msg)
		}
		if msg := admin.fails("ping", idle.full(), "-c", "1"); !strings.Contains(msg, "not reachable now") {
			t.Errorf("offline refusal: %q", msg)
		}
		if msg := admin.fails("connect", pc.full(), "--transport", "carrier-pigeon"); !strings.Contains(msg, "transport") {
			t.Errorf("bad transport: %q", msg)
		}
	})
}

// TestRelayLimits runs a broker with tight relay limits: a second relayed
// session for the same peers is refused while the first is open, and a
// relayed session that goes over the byte limit is cut; a direct session
// is not affected by either.
func TestRelayLimits(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBrokerArgs(t, base, "lim", 300*time.Millisecond, "--relay-max-per-peer", "1", "--relay-max-bytes", "1048576")
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	pc := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "pc-01", "windows-ready.json")
	pc.start()
	waitOnline(t, admin, 20*time.Second, pc)

	msg := admin.fails("connect", pc.full(), "--transport", "relay", "--send", "4MiB")
	if !strings.Contains(msg, "relay closed") {
		t.Errorf("a relayed send over the byte limit: %q", msg)
	}
	t.Logf("over the relay's byte limit: %s", strings.TrimSpace(msg))
	hold := startProc(t, "meshctl connect", []string{"READYMESH_HOME=" + admin.home, "READYMESH_SESSION_ADDR=127.0.0.1:0"},
		bins.meshctl, "connect", pc.full(), "--transport", "relay", "--hold", "20s")
	hold.waitOutput(t, "session ", 20*time.Second)
	if msg := admin.fails("ping", pc.full(), "-c", "1", "--transport", "relay"); !strings.Contains(msg, "relay limit") {
		t.Errorf("second relayed session: %q", msg)
	}
	admin.ok("connect", pc.full(), "--transport", "quic", "--send", "4MiB")
	hold.signal(t, 15)
	hold.wait(t, exitTimeout)
}
