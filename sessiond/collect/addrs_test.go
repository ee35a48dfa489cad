package collect

import (
	"net"
	"net/netip"
	"slices"
	"testing"
)

func TestReportable(t *testing.T) {
	tests := map[string]bool{
		"192.168.1.20": true,
		"10.0.0.1":     true,
		"169.254.10.1": true, // DHCP failed: worth knowing
		"2001:db8::1":  true,
		"fd00::5":      true,
		"127.0.0.1":    false,
		"127.77.0.1":   false,
		"::1":          false,
		"fe80::1":      false,
		"0.0.0.0":      false,
		"::":           false,
	}
	for s, want := range tests {
		if got := reportable(netip.MustParseAddr(s)); got != want {
			t.Errorf("%s: got %v, want %v", s, got, want)
		}
	}
}

func TestAppendAddrs(t *testing.T) {
	in := []net.Addr{
		&net.IPNet{IP: net.ParseIP("192.0.2.7"), Mask: net.CIDRMask(24, 32)}, // 16-byte form
		&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
		&net.IPAddr{IP: net.ParseIP("198.51.100.1")}, // not an interface address
		&net.IPNet{IP: net.ParseIP("2001:db8::7"), Mask: net.CIDRMask(64, 128)},
	}
	got := appendAddrs(nil, in)
	if want := []string{"192.0.2.7", "2001:db8::7"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
