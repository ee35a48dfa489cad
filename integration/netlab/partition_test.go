package netlab

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPartitionConvergesToLaterWrite splits a three-broker cluster, each
// broker in its own namespace on one switch, with nftables: {eu-1} | {eu-2,
// eu-3}. Both sides create the same technician with different scopes; once
// the partition heals, every broker holds the later write (the store's
// documented rule for control records: the later hybrid-clock write wins).
func TestPartitionConvergesToLaterWrite(t *testing.T) {
	l := New(t, "nft")
	sw := l.Switch("lan")
	ips := []string{"10.213.50.1", "10.213.50.2", "10.213.50.3"}
	var hosts []string
	for i, ip := range ips {
		h := l.Host("b" + string(rune('1'+i)))
		l.Attach(h, sw, ip+"/24")
		hosts = append(hosts, h)
	}
	key := filepath.Join(t.TempDir(), "gossip.key")
	if out, err := exec.Command(filepath.Join(binDir, "broker"), "gossip-key", key).CombinedOutput(); err != nil {
		t.Fatalf("gossip-key: %v: %s", err, out)
	}
	var fleets []*fleet
	for i, h := range hosts {
		extra := []string{"--gossip", ips[i] + ":7946", "--gossip-key-file", key, "--gossip-profile", "local",
			"--name", "eu-" + string(rune('1'+i)), "--region", "eu"}
		if i > 0 {
			extra = append(extra, "--join", ips[0]+":7946")
		}
		fleets = append(fleets, startBrokerArgs(t, l, h, ips[i], extra...))
	}
	one, two := fleets[0], fleets[1]
	alive := func(f *fleet, n int) func() (bool, string) {
		return func() (bool, string) {
			out := string(f.try("brokers", "--json"))
			return strings.Count(out, `"state": "alive"`) == n, out
		}
	}
	waitFor(t, 20*time.Second, "three alive brokers", alive(one, 3))
	waitFor(t, 10*time.Second, "client globex replicated", func() (bool, string) {
		out := string(two.try("clients", "ls", "--json"))
		return strings.Contains(out, `"globex"`) && strings.Contains(out, `"lab"`), out
	})

	// Partition eu-1 from the other two, both ways.
	l.Nft(hosts[0], "add table inet part")
	l.Nft(hosts[0], "'add chain inet part in { type filter hook input priority 0 ; }'")
	l.Nft(hosts[0], "'add chain inet part out { type filter hook output priority 0 ; }'")
	l.Nft(hosts[0], "add rule inet part in ip saddr { 10.213.50.2, 10.213.50.3 } drop")
	l.Nft(hosts[0], "add rule inet part out ip daddr { 10.213.50.2, 10.213.50.3 } drop")
	waitFor(t, 30*time.Second, "eu-1 alone", func() (bool, string) {
		out := string(one.try("brokers", "--json"))
		return strings.Count(out, `"state": "alive"`) == 1, out
	})

	// The same technician on both sides: eu-2's write first, eu-1's later.
	two.meshctl(t, "technicians", "add", "alice", "--clients", "lab", "--modes", "read-only")
	time.Sleep(50 * time.Millisecond)
	one.meshctl(t, "technicians", "add", "alice", "--clients", "globex", "--modes", "read-only,interactive")

	l.Nft(hosts[0], "delete table inet part")
	waitFor(t, 30*time.Second, "the cluster whole again", alive(two, 3))
	for _, f := range fleets {
		waitFor(t, 60*time.Second, "alice converged to the later write", func() (bool, string) {
			var ts []struct {
				Name    string   `json:"name"`
				Clients []string `json:"clients"`
			}
			json.Unmarshal(f.try("technicians", "ls", "--json"), &ts)
			for _, tt := range ts {
				if tt.Name == "alice" {
					return strings.Join(tt.Clients, ",") == "globex", strings.Join(tt.Clients, ",")
				}
			}
			return false, "no alice"
		})
	}
}

// try runs meshctl in the broker's namespace and returns its output, or
// nothing when it fails (for polling).
func (f *fleet) try(args ...string) []byte {
	cmd := f.lab.Command(f.brokerN, filepath.Join(binDir, "meshctl"), args...)
	cmd.Env = append(os.Environ(), "READYMESH_HOME="+f.home)
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	return out
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		var done bool
		if done, last = ok(); done {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last: %s", what, limit, last)
}
