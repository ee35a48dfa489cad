package netlab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// directExpected is RFC 4787's answer for a technician at site kind tech
// and an agent at kind agent, both punching from their session sockets
// with server-reflexive candidates and answering peer-reflexive ones (no
// port prediction):
//   - UDP blocked at either end: no UDP path at all, so the relay.
//   - A public side (no NAT) receives from any port, and answers the port a
//     probe came from, so a NATed side of any mapping kind reaches it.
//   - Endpoint-independent mapping on both sides (cone, and double NAT
//     made of two cone routers) with address-and-port-dependent filtering:
//     each side's probes open its own filter for the other's announced
//     mapping, so simultaneous open meets.
//   - Endpoint-dependent mapping (symmetric) against a NATed peer whose
//     filter depends on address and port (all nftables kinds here): the
//     symmetric side's mapping towards the peer has a port nobody could
//     announce, and the peer's filter drops it; relay.
func directExpected(tech, agent SiteKind) bool {
	switch {
	case tech == UDPBlocked || agent == UDPBlocked:
		return false
	case tech == Public || agent == Public:
		return true
	case tech == Symmetric || agent == Symmetric:
		return false
	}
	return true
}

type pingJSON struct {
	Pongs []struct {
		Path  string  `json:"path"`
		RTTMs float64 `json:"rtt_ms"`
	} `json:"pongs"`
	Lost int    `json:"lost"`
	Path string `json:"path"`
}

// TestNATMatrix connects a technician at each site kind to an agent at
// each site kind through one broker on the public segment: every pair
// connects; the pairs RFC 4787 lets meet directly end on direct-quic, the
// rest on the relay; and the routers' counters confirm the path reported
// is the path used: UDP both ways between the two sites' public addresses
// for a direct path, none coming in for a relayed one.
func TestNATMatrix(t *testing.T) {
	l := New(t, "nft")
	inet := l.Internet("inet")
	brk := inet.Server("brk")
	f := startBrokerArgs(t, l, brk.NS, brk.Addr.String(), "--stun", brk.Addr.String()+":3478", "--name", "brk")
	kinds := []SiteKind{Public, Cone, Symmetric, UDPBlocked, DoubleNAT}
	agents := map[SiteKind]*Site{}
	for _, k := range kinds {
		s := inet.Site("a"+short(k), k)
		agents[k] = s
		f.agent(t, s.Host.NS, "agent-"+string(k), "--inventory", fixture)
	}
	techs := map[SiteKind]*Site{}
	homes := map[SiteKind]string{}
	for _, k := range kinds {
		s := inet.Site("t"+short(k), k)
		techs[k] = s
		homes[k] = filepath.Join(t.TempDir(), "tech-"+string(k))
		cmd := l.Command(s.Host.NS, filepath.Join(binDir, "meshctl"), "login", "--credential", filepath.Join(f.data, "admin.credential"))
		cmd.Env = append(os.Environ(), "READYMESH_HOME="+homes[k])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("technician login at %s site: %v: %s", k, err, out)
		}
	}
	for _, k := range kinds {
		f.waitCard(t, "agent-"+string(k), 40*time.Second, func(c card) bool { return c.Reachability.Online && c.Readiness.CheckInSeq > 0 })
	}
	for _, tk := range kinds {
		for _, ak := range kinds {
			techs[tk].CountUDP(pairCounter(ak), agents[ak].Public)
		}
	}

	type result struct {
		tech, agent SiteKind
		path        string
		lost, pongs int
		count       Count
		err         string
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	for _, tk := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, ak := range kinds {
				r := result{tech: tk, agent: ak}
				cmd := l.Command(techs[tk].Host.NS, filepath.Join(binDir, "meshctl"), "ping", "lab/agent-"+string(ak),
					"-c", "20", "--interval", "200ms", "--timeout", "1s", "--until-direct", "--json")
				cmd.Env = append(os.Environ(), "READYMESH_HOME="+homes[tk])
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				var p pingJSON
				if err != nil {
					r.err = fmt.Sprintf("%v: %s", err, strings.TrimSpace(stderr.String()))
				} else if err := json.Unmarshal(out, &p); err != nil {
					r.err = fmt.Sprintf("%v: %s", err, out)
				}
				r.path, r.lost, r.pongs = p.Path, p.Lost, len(p.Pongs)
				r.count = techs[tk].Counter(pairCounter(ak))
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	direct := 0
	for _, r := range results {
		want := directExpected(r.tech, r.agent)
		isDirect := strings.HasPrefix(r.path, "direct-quic")
		usedUDP := r.count.InPackets > 0 && r.count.OutPackets > 0
		t.Logf("technician %-11s → agent %-11s  %-36s pongs %2d lost %d  UDP between sites out %d in %d", r.tech, r.agent, r.path, r.pongs, r.lost, r.count.OutPackets, r.count.InPackets)
		switch {
		case r.err != "":
			t.Errorf("%s → %s: did not connect: %s", r.tech, r.agent, r.err)
		case r.pongs == r.lost:
			t.Errorf("%s → %s: no answers", r.tech, r.agent)
		case isDirect != want:
			t.Errorf("%s → %s: path %s, direct expected: %v", r.tech, r.agent, r.path, want)
		case isDirect != usedUDP:
			t.Errorf("%s → %s: path %s, but the router saw %d packets out and %d in between the sites", r.tech, r.agent, r.path, r.count.OutPackets, r.count.InPackets)
		case !isDirect && r.path != "relayed via brk":
			t.Errorf("%s → %s: path %q, want relayed via brk", r.tech, r.agent, r.path)
		}
		if isDirect {
			direct++
		}
	}
	t.Logf("%d of %d pairs direct, as RFC 4787 predicts", direct, len(results))

	// WebRTC finds the same paths with ICE, and falls back to the broker's
	// TURN relay where QUIC falls back to the bridge relay.
	for _, c := range []struct {
		tech, agent SiteKind
		want        string
	}{
		{Cone, Cone, "direct-webrtc"},
		{Public, Symmetric, "direct-webrtc"},
		{Cone, Symmetric, "relayed-turn via brk"},
		{Symmetric, Symmetric, "relayed-turn via brk"},
	} {
		cmd := l.Command(techs[c.tech].Host.NS, filepath.Join(binDir, "meshctl"), "ping", "lab/agent-"+string(c.agent),
			"-c", "3", "--interval", "100ms", "--transport", "webrtc", "--json")
		cmd.Env = append(os.Environ(), "READYMESH_HOME="+homes[c.tech])
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var p pingJSON
		if err == nil {
			err = json.Unmarshal(out, &p)
		}
		t.Logf("webrtc: technician %-9s → agent %-9s  %s, lost %d", c.tech, c.agent, p.Path, p.Lost)
		if err != nil {
			t.Errorf("webrtc %s → %s: %v: %s", c.tech, c.agent, err, stderr.String())
			continue
		}
		if !strings.HasPrefix(p.Path, c.want) || p.Lost == len(p.Pongs) {
			t.Errorf("webrtc %s → %s: path %q (lost %d), want %s", c.tech, c.agent, p.Path, p.Lost, c.want)
		}
	}
}

func short(k SiteKind) string {
	return map[SiteKind]string{Public: "pub", Cone: "cone", Symmetric: "sym", UDPBlocked: "blk", DoubleNAT: "dbl"}[k]
}

func pairCounter(agent SiteKind) string { return "to_" + short(agent) }
