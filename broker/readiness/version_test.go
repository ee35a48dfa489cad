package readiness

import (
	"testing"

	"github.com/readymesh/readymesh/broker/store"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.3", 1},
		{"1.2.0", "1.2.1", -1},
		{"2.0.0", "10.0.0", -1},
		{"1.2.0", "1.2.0", 0},
		{"v1.2.0", "1.2.0", 0},
		{"V2.0", "v1.9", 1},
		{"1.2", "1.2.0", 0},
		{"1.2", "1.2.1", -1},
		{"1.02.0", "1.2.0", 0},
		{"99999999999999999999999.0", "1.0", 1}, // wider than uint64
		{"1.2.0-rc1", "1.2.0", -1},
		{"1.2.0-rc1", "1.1.9", 1},
		{"1.2.0-rc2", "1.2.0-rc10", -1},
		{"1.2.0-alpha", "1.2.0-beta", -1},
		{"1.2.0-alpha", "1.2.0-alpha.1", -1},
		{"1.2.0-1", "1.2.0-alpha", -1},
		{"1.2.0-rc.2", "1.2.0-rc.10", -1},
		{"1.2.0-rc.02", "1.2.0-rc.2", 0},
		{"1.2.0+build7", "1.2.0", 0},
		{"1.2.0-rc1+build7", "1.2.0-rc1", 0},
		// unparsable: byte-wise
		{"dev", "dev", 0},
		{"dev", "1.0.0", 1},
		{"", "1.0", -1},
		{"1.x", "1.2", 1},
		{"1..2", "1.2", -1},
		{"1.2.", "1.2", 1},
		{"1.2.0-", "1.2.0", 1},
		{"1.2.0+", "1.2.0", 1},
		{"v", "1", 1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestNewest(t *testing.T) {
	tests := []struct {
		versions []string
		want     string
	}{
		{nil, ""},
		{[]string{"", ""}, ""},
		{[]string{"1.2.0", "1.10.0", "1.9.9"}, "1.10.0"},
		{[]string{"1.3.0-rc1", "1.2.0"}, "1.3.0-rc1"},
		{[]string{"1.3.0-rc1", "1.3.0", "1.3.0-rc2"}, "1.3.0"},
		{[]string{"dev", "1.2.0"}, "1.2.0"},
		{[]string{"1.2.0", "dev", ""}, "1.2.0"},
		{[]string{"dev", "abc"}, "dev"},
		{[]string{"v1.4.0", "1.4.0"}, "v1.4.0"}, // equal: the first wins
	}
	for _, tt := range tests {
		ms := make([]store.Machine, len(tt.versions))
		for i, v := range tt.versions {
			ms[i].AgentVersion = v
		}
		if got := Newest(ms); got != tt.want {
			t.Errorf("Newest(%q) = %q, want %q", tt.versions, got, tt.want)
		}
	}
}

func TestPolicyAgentVersionPinsTheMark(t *testing.T) {
	ms := []store.Machine{{Client: "acme", AgentVersion: "1.2.0"}, {Client: "acme", AgentVersion: "999.0"}}
	if got := (Policy{}).NewestOf(ms, "acme"); got != "999.0" {
		t.Errorf("without a pinned version, NewestOf = %q, want the client's 999.0", got)
	}
	if got := (Policy{AgentVersion: "1.2.0"}).NewestOf(ms, "acme"); got != "1.2.0" {
		t.Errorf("with a pinned version, NewestOf = %q, want 1.2.0", got)
	}
}
