package readiness

import (
	"testing"

	"github.com/readymesh/readymesh/broker/store"
)

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
