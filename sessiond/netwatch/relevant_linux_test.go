package netwatch

import (
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestRelevant(t *testing.T) {
	route := func(typ netlink.HeaderType, dstLen byte) netlink.Message {
		data := make([]byte, rtmsgLen+8)
		data[0], data[1], data[4] = unix.AF_INET, dstLen, unix.RT_TABLE_MAIN
		return netlink.Message{Header: netlink.Header{Type: typ}, Data: data}
	}
	msg := func(typ netlink.HeaderType) netlink.Message {
		return netlink.Message{Header: netlink.Header{Type: typ}, Data: make([]byte, 8)}
	}
	addr := func(family, scope byte) netlink.Message {
		return netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWADDR}, Data: []byte{family, 64, 0, scope, 2, 0, 0, 0}}
	}
	tests := []struct {
		name string
		m    netlink.Message
		want bool
	}{
		{"new address", msg(unix.RTM_NEWADDR), true},
		{"deleted address", msg(unix.RTM_DELADDR), true},
		{"new default route", route(unix.RTM_NEWROUTE, 0), true},
		{"deleted default route", route(unix.RTM_DELROUTE, 0), true},
		{"subnet route", route(unix.RTM_NEWROUTE, 24), false},
		{"host route", route(unix.RTM_DELROUTE, 128), false},
		{"short route message", netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWROUTE}, Data: []byte{2, 0}}, false},
		{"global IPv6 address", addr(unix.AF_INET6, unix.RT_SCOPE_UNIVERSE), true},
		{"IPv6 link-local address (DAD, SLAAC)", addr(unix.AF_INET6, unix.RT_SCOPE_LINK), false},
		{"IPv4 link-local address (DHCP failed)", addr(unix.AF_INET, unix.RT_SCOPE_LINK), true},
		{"link change", msg(unix.RTM_NEWLINK), false},
		{"neighbour", msg(unix.RTM_NEWNEIGH), false},
	}
	for _, tt := range tests {
		if got := relevant(tt.m); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if n := countRelevant([]netlink.Message{msg(unix.RTM_NEWADDR), route(unix.RTM_NEWROUTE, 8), route(unix.RTM_NEWROUTE, 0)}); n != 2 {
		t.Errorf("countRelevant = %d, want 2", n)
	}
}
