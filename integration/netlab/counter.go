package netlab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
)

// Count is what a counter made by Site.CountUDP has seen, in IP packets
// and in bytes including IP and UDP headers.
type Count struct {
	// OutPackets and OutBytes count packets from the site to the remote
	// address. A packet counted here left the site's outermost router
	// (dropped ones are not counted) but may still be dropped by the remote
	// side's router: a failed hole punch shows out and no in.
	OutPackets, OutBytes uint64
	// InPackets and InBytes count packets from the remote address that
	// entered the site: through the router's forward hook, so past its
	// filter, or into a Public host.
	InPackets, InBytes uint64
}

var counterName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,31}$`)

// CountUDP starts counting, under name, the UDP packets between the site
// and the public address remote, in each direction. They are counted where
// they cross the site's edge: on the outermost router's forward hook, after
// its filter (so packets it drops are not counted), or on a Public host's
// input and output hooks. Traffic between two sites' Public addresses shows
// a direct path; traffic relayed through a server does not, as it goes to
// the server's address instead.
//
// name must be a letter then up to 31 letters, digits or underscores,
// unique within the site. The counters live in the nftables table "inet
// count" of Site.Routers[0] (or of Host.NS for Public).
func (s *Site) CountUDP(name string, remote netip.Addr) {
	l := s.in.lab
	l.t.Helper()
	if !counterName.MatchString(name) {
		l.t.Fatalf("netlab: counter name %q is not an nft identifier", name)
	}
	if !remote.Is4() {
		l.t.Fatalf("netlab: counter %s: remote %s is not IPv4", name, remote)
	}
	// Named counters are created with "create", which fails when the name
	// is taken, so a reused name cannot double-count.
	script := fmt.Sprintf(`
add table inet count
create counter inet count %[1]s_out
create counter inet count %[1]s_in
`, name)
	if s.Kind == Public {
		script += fmt.Sprintf(`
add chain inet count outbound { type filter hook output priority filter + 10 ; }
add chain inet count inbound { type filter hook input priority filter + 10 ; }
add rule inet count outbound meta l4proto udp ip daddr %[2]s counter name "%[1]s_out"
add rule inet count inbound meta l4proto udp ip saddr %[2]s counter name "%[1]s_in"
`, name, remote)
	} else {
		// After the router's "inet fw" filter, at priority filter: only
		// packets it lets through are counted.
		script += fmt.Sprintf(`
add chain inet count through { type filter hook forward priority filter + 10 ; }
add rule inet count through meta l4proto udp ip daddr %[2]s counter name "%[1]s_out"
add rule inet count through meta l4proto udp ip saddr %[2]s counter name "%[1]s_in"
`, name, remote)
	}
	l.nftScript(s.edge(), script)
}

// Counter reads the counter CountUDP made under name.
func (s *Site) Counter(name string) Count {
	l := s.in.lab
	l.t.Helper()
	all := l.counters(s.edge(), "inet", "count")
	out, okOut := all[name+"_out"]
	in, okIn := all[name+"_in"]
	if !okOut || !okIn {
		l.t.Fatalf("netlab: site %s has no counter %q", s.Host.NS, name)
	}
	return Count{OutPackets: out[0], OutBytes: out[1], InPackets: in[0], InBytes: in[1]}
}

// edge is the namespace where the site meets the Internet.
func (s *Site) edge() string {
	if len(s.Routers) == 0 {
		return s.Host.NS
	}
	return s.Routers[0]
}

// counters reads the named counters of an nftables table in namespace ns:
// packets and bytes by name.
func (l *Lab) counters(ns, family, table string) map[string][2]uint64 {
	l.t.Helper()
	out := l.must("ip", "netns", "exec", ns, "nft", "-j", "list", "counters", "table", family, table)
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets uint64 `json:"packets"`
				Bytes   uint64 `json:"bytes"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		l.t.Fatalf("netlab: nft counters in %s: %v\n%s", ns, err, out)
	}
	m := make(map[string][2]uint64)
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			m[o.Counter.Name] = [2]uint64{o.Counter.Packets, o.Counter.Bytes}
		}
	}
	return m
}
