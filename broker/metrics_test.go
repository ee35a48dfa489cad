package broker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/readiness"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// The fleet gauges and the label values each may carry: fixed sets, none
// of them from a caller.
var fleetLabels = map[string]map[string][]string{
	"readymesh_machines":                  {"readiness": readiness.States(), "reachable": {"true", "false"}},
	"readymesh_bridges":                   {"transport": {"quic", "tcp", "websocket", "other"}},
	"readymesh_sessions":                  {"path": {wire.PathDirectQUIC, wire.PathDirectWebRTC, wire.PathRelayed, wire.PathRelayedTURN, "other"}},
	"readymesh_sessions_waiting_approval": {},
	"readymesh_cluster_members":           {"state": {cluster.StateAlive, cluster.StateSuspect, cluster.StateDead, cluster.StateLeft}},
	"readymesh_replication_lag_seconds":   {},
}

// scrape is one gathering of a broker's registry: each series' value by
// "name{label=value,…}" with labels in name order.
type scrape struct {
	families []*dto.MetricFamily
	values   map[string]float64
}

func (tb *testBroker) scrape(t *testing.T) scrape {
	t.Helper()
	fams, err := tb.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	s := scrape{families: fams, values: map[string]float64{}}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var v float64
			switch {
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			default:
				continue
			}
			s.values[seriesKey(f.GetName(), m.GetLabel())] = v
		}
	}
	return s
}

func seriesKey(name string, labels []*dto.LabelPair) string {
	var parts []string
	for _, l := range labels {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	slices.Sort(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// has reports whether the scrape holds series key, and its value.
func (s scrape) has(key string) (float64, bool) {
	v, ok := s.values[key]
	return v, ok
}

// want fails the test unless every series of want has its value.
func (s scrape) want(t *testing.T, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		got, ok := s.values[k]
		switch {
		case !ok:
			t.Errorf("%s: missing", k)
		case got != v:
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
}

// checkLabels fails the test if a fleet gauge carries a label or value
// outside its fixed set, or a series is missing from it, or any label of
// any metric of the registry contains a string a caller sent.
func (s scrape) checkLabels(t *testing.T, sent []string, clustered bool) {
	t.Helper()
	seen := map[string]bool{}
	for _, f := range s.families {
		sets, fleet := fleetLabels[f.GetName()]
		seen[f.GetName()] = fleet
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, x := range sent {
					if strings.Contains(l.GetValue(), x) {
						t.Errorf("%s: label %s=%q carries %q, which a caller sent", f.GetName(), l.GetName(), l.GetValue(), x)
					}
				}
				if fleet && !slices.Contains(sets[l.GetName()], l.GetValue()) {
					t.Errorf("%s: label %s=%q is not of its fixed set %v", f.GetName(), l.GetName(), l.GetValue(), sets[l.GetName()])
				}
			}
		}
		if fleet {
			n := 1
			for _, vals := range sets {
				n *= len(vals)
			}
			if len(f.GetMetric()) != n {
				t.Errorf("%s: %d series, want every combination of its labels (%d)", f.GetName(), len(f.GetMetric()), n)
			}
		}
	}
	for name := range fleetLabels {
		inCluster := name == "readymesh_cluster_members" || name == "readymesh_replication_lag_seconds"
		if got, want := seen[name], clustered || !inCluster; got != want {
			t.Errorf("%s exported: %v, want %v", name, got, want)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(s.families).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if _, fleet := fleetLabels[p.Metric]; fleet {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// snapshotAt is testSnapshot collected at now, with its approval policy
// and pending updates as given.
func snapshotAt(host string, now time.Time, approval wire.Approval, pending int) wire.Snapshot {
	s := testSnapshot(host)
	s.CollectedAt = now.UTC().Truncate(time.Millisecond)
	s.Approval = approval
	s.PendingUpdates = nil
	for i := range pending {
		s.PendingUpdates = append(s.PendingUpdates, wire.PendingUpdate{ID: fmt.Sprintf("pkg-%d", i), Version: "2", Source: "apt"})
	}
	return s
}

// checkedIn enrols name with tok and, unless snap is nil, checks it in.
func (tb *testBroker) checkedIn(t *testing.T, tok wire.Token, name string, snap *wire.Snapshot) *testClient {
	t.Helper()
	a := tb.agent(t, tok, name)
	if snap != nil {
		if ack := a.checkIn(1, *snap); ack.Error != nil {
			t.Fatalf("check-in of %s: %v", name, ack.Error)
		}
	}
	return a
}

// clientVia connects a new client to tb over one transport only: the
// broker addresses whose multiaddr has proto.
func (tb *testBroker) clientVia(t *testing.T, proto int) {
	t.Helper()
	key, _, err := identity.LoadOrCreate(t.TempDir() + "/client.key")
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ai, err := bridge.AddrInfo(tb.info)
	if err != nil {
		t.Fatal(err)
	}
	only := peer.AddrInfo{ID: ai.ID}
	for _, a := range ai.Addrs {
		_, errWS := a.ValueForProtocol(ma.P_WS)
		_, err := a.ValueForProtocol(proto)
		if err == nil && (proto == ma.P_WS || errWS != nil) {
			only.Addrs = append(only.Addrs, a)
		}
	}
	if len(only.Addrs) == 0 {
		t.Fatalf("broker has no address with protocol %d: %v", proto, ai.Addrs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := h.Connect(ctx, only); err != nil {
		t.Fatalf("connect over %v: %v", only.Addrs, err)
	}
}

// TestFleetMetrics: on a broker with a machine in every readiness state,
// one of them online and reporting sessions on every path (and one the
// broker does not know), and clients on each bridge transport, /metrics
// counts each exactly, every label comes from a fixed set and none from a
// caller, and the counts follow the fleet as it changes.
func TestFleetMetrics(t *testing.T) {
	clock := &testClock{}
	tb := startBroker(t, func(c *Config) { c.Now = clock.Now })
	admin := tb.admin(t)
	tb.createClient(admin, "clientzeta")
	tok := tb.token(admin, "clientzeta", 10, 48*time.Hour)
	free := wire.Approval{}
	needs := wire.Approval{Required: true}

	// Checked in now, then three hours pass: stale.
	snap := snapshotAt("zz-stale", clock.Now(), free, 0)
	stale := tb.checkedIn(t, tok, "zz-stale", &snap)
	clock.Advance(3 * time.Hour)
	incomplete := tb.checkedIn(t, tok, "zz-incomplete", nil)
	snap = snapshotAt("zz-ready", clock.Now(), free, 1)
	ready := tb.checkedIn(t, tok, "zz-ready", &snap)
	snap = snapshotAt("zz-online", clock.Now(), free, 0)
	online := tb.checkedIn(t, tok, "zz-online", &snap)
	snap = snapshotAt("zz-degraded", clock.Now(), free, 11)
	degraded := tb.checkedIn(t, tok, "zz-degraded", &snap)
	snap = snapshotAt("zz-consent", clock.Now(), needs, 0)
	consent := tb.checkedIn(t, tok, "zz-consent", &snap)

	ps, reply := online.openPresence(wire.Hello{MachineID: online.ID(), AgentVersion: "0.1.0"})
	if reply.Error != nil {
		t.Fatalf("hello: %v", reply.Error)
	}
	ps.beat(t, wire.Heartbeat{Seq: 1})
	callerPath := "made-up-path-" + online.ID()
	var ack wire.Reply
	online.call(wire.ProtoSessionStatus, &wire.SessionStatus{Sessions: []wire.SessionInfo{
		{Session: "s1", Technician: "admin", Mode: wire.ModeInteractive, Path: wire.PathDirectQUIC, State: "active"},
		{Session: "s2", Technician: "admin", Mode: wire.ModeReadOnly, Path: wire.PathRelayed + " via " + tb.cfg.Name},
		{Session: "s3", Technician: "admin", Mode: wire.ModeReadOnly, Path: wire.PathRelayedTURN + " via " + tb.cfg.Name},
		{Session: "s4", Technician: "admin", Mode: wire.ModeReadOnly, Path: callerPath},
		{Session: "s5", Technician: "admin", Mode: wire.ModeInteractive, State: "waiting-for-approval"},
	}}, &ack)
	if ack.Error != nil {
		t.Fatalf("session status: %v", ack.Error)
	}
	tb.clientVia(t, ma.P_TCP)
	tb.clientVia(t, ma.P_WS)

	s := tb.scrape(t)
	s.want(t, map[string]float64{
		"readymesh_machines{reachable=true,readiness=ready}":             1,
		"readymesh_machines{reachable=false,readiness=ready}":            1,
		"readymesh_machines{reachable=false,readiness=degraded}":         1,
		"readymesh_machines{reachable=false,readiness=consent-required}": 1,
		"readymesh_machines{reachable=false,readiness=stale}":            1,
		"readymesh_machines{reachable=false,readiness=incomplete}":       1,
		"readymesh_machines{reachable=true,readiness=degraded}":          0,
		"readymesh_machines_online{}":                                    1,
		"readymesh_sessions{path=direct-quic}":                           1,
		"readymesh_sessions{path=direct-webrtc}":                         0,
		"readymesh_sessions{path=relayed}":                               1,
		"readymesh_sessions{path=relayed-turn}":                          1,
		"readymesh_sessions{path=other}":                                 1,
		"readymesh_sessions_waiting_approval{}":                          1,
		"readymesh_bridges{transport=tcp}":                               1,
		"readymesh_bridges{transport=websocket}":                         1,
		"readymesh_bridges{transport=other}":                             0,
	})
	// The admin and the six agents bridge over QUIC.
	if quic, _ := s.has("readymesh_bridges{transport=quic}"); quic < 7 {
		t.Errorf("readymesh_bridges{transport=quic} = %v, want at least 7", quic)
	}
	var sent []string
	for _, a := range []*testClient{stale, incomplete, ready, online, degraded, consent} {
		sent = append(sent, a.ID())
	}
	sent = append(sent, "zz-", "clientzeta", callerPath)
	s.checkLabels(t, sent, false)
	for _, f := range s.families {
		if f.GetName() == "readymesh_checkins_total" && !strings.Contains(f.GetHelp(), "per second") {
			t.Errorf("readymesh_checkins_total's help does not say how to get check-ins per second: %q", f.GetHelp())
		}
	}

	// The online agent leaves: within a second (the scrape cache) and a
	// heartbeat, it counts as unreachable and its sessions are gone.
	if err := ps.s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the gauges to follow the agent leaving", func() bool {
		s := tb.scrape(t)
		on, _ := s.has("readymesh_machines{reachable=true,readiness=ready}")
		off, _ := s.has("readymesh_machines{reachable=false,readiness=ready}")
		q, _ := s.has("readymesh_sessions{path=direct-quic}")
		return on == 0 && off == 2 && q == 0
	})
}

// TestFleetMetricsCluster: two brokers gossiping on loopback both count
// each other alive, report a replication lag under a push/pull interval
// once caught up, and count the same fleet (the gauges are fleet-wide:
// max, not sum, across brokers).
func TestFleetMetricsCluster(t *testing.T) {
	key := [][]byte{[]byte("readymesh-metrics-test-gossip!!!")}
	b1 := startBroker(t, func(c *Config) {
		c.Name, c.Gossip, c.GossipProfile, c.GossipKeys = "b1", "127.0.0.1:0", "local", key
	})
	b2 := startBroker(t, func(c *Config) {
		c.Name, c.Gossip, c.GossipProfile, c.GossipKeys = "b2", "127.0.0.1:0", "local", key
		c.Join = []string{b1.cluster.LocalAddr()}
	})
	_, tok := b1.fleet(t)
	for _, name := range []string{"zz-one", "zz-two"} {
		snap := snapshotAt(name, time.Now(), wire.Approval{}, 0)
		b1.checkedIn(t, tok, name, &snap)
	}
	waitFor(t, 20*time.Second, "b2 to hold both machines and count b1 alive", func() bool {
		s := b2.scrape(t)
		ready, _ := s.has("readymesh_machines{reachable=false,readiness=ready}")
		alive, _ := s.has("readymesh_cluster_members{state=alive}")
		return ready == 2 && alive == 2
	})
	for _, tb := range []*testBroker{b1, b2} {
		s := tb.scrape(t)
		s.want(t, map[string]float64{
			"readymesh_cluster_members{state=alive}":                   2,
			"readymesh_cluster_members{state=suspect}":                 0,
			"readymesh_cluster_members{state=dead}":                    0,
			"readymesh_cluster_members{state=left}":                    0,
			"readymesh_machines{reachable=false,readiness=ready}":      2,
			"readymesh_machines{reachable=false,readiness=incomplete}": 0,
		})
		lag, ok := s.has("readymesh_replication_lag_seconds{}")
		if !ok || lag < 0 || lag > 15 {
			t.Errorf("%s: replication lag %v (exported %v), want within the local profile's 15 s push/pull interval", tb.cfg.Name, lag, ok)
		}
		s.checkLabels(t, []string{"zz-", "acme"}, true)
	}
}

// TestFleetMetricsLabelMaps: what agents and connections report is mapped
// onto the fixed sets.
func TestFleetMetricsLabelMaps(t *testing.T) {
	for in, want := range map[string]string{
		wire.PathDirectQUIC: wire.PathDirectQUIC, wire.PathDirectWebRTC: wire.PathDirectWebRTC,
		"relayed via eu-1": wire.PathRelayed, "relayed-turn via eu-1": wire.PathRelayedTURN,
		"": "other", "relayed-ish": "other", "direct-quic\n": "other", "evil{label=\"x\"}": "other",
	} {
		if got := sessionPath(in); got != want {
			t.Errorf("sessionPath(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"/ip4/127.0.0.1/udp/4001/quic-v1":       "quic",
		"/ip4/127.0.0.1/tcp/4001":               "tcp",
		"/ip4/127.0.0.1/tcp/4002/ws":            "websocket",
		"/ip6/::1/tcp/4002/tls/ws":              "websocket",
		"/ip4/127.0.0.1/udp/4001/webrtc-direct": "other",
	} {
		a, err := ma.NewMultiaddr(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := bridgeTransport(a); got != want {
			t.Errorf("bridgeTransport(%s) = %q, want %q", in, got, want)
		}
	}
}

// get fetches path from tb's HTTP port.
func (tb *testBroker) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + tb.httpLn.Addr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestFleetMetricsServed: the gauges are on the broker's /metrics.
func TestFleetMetricsServed(t *testing.T) {
	tb := startBroker(t)
	_, tok := tb.fleet(t)
	tb.checkedIn(t, tok, "zz-served", nil)
	body := tb.get(t, "/metrics")
	for _, line := range []string{
		`readymesh_machines{reachable="false",readiness="incomplete"} 1`,
		`readymesh_sessions{path="direct-quic"} 0`,
		`# TYPE readymesh_bridges gauge`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
