package readiness

import (
	"errors"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

func TestMatch(t *testing.T) {
	yes, no := true, false
	c := card("m1", "acme", "desk-01", wire.StateDegraded, true)
	c.Readiness.PendingUpdates = []wire.PendingUpdate{{ID: "KB5034441"}, {ID: "openssl"}}
	tests := []struct {
		name string
		args wire.MachinesArgs
		want bool
	}{
		{"no filter", wire.MachinesArgs{}, true},
		{"client", wire.MachinesArgs{Client: "acme"}, true},
		{"other client", wire.MachinesArgs{Client: "beta"}, false},
		{"client is exact", wire.MachinesArgs{Client: "ACME"}, false},
		{"state", wire.MachinesArgs{Readiness: wire.StateDegraded}, true},
		{"other state", wire.MachinesArgs{Readiness: wire.StateReady}, false},
		{"online", wire.MachinesArgs{Online: &yes}, true},
		{"offline", wire.MachinesArgs{Online: &no}, false},
		{"pending update", wire.MachinesArgs{PendingUpdate: "KB5034441"}, true},
		{"pending update ignores case", wire.MachinesArgs{PendingUpdate: "kb5034441"}, true},
		{"pending update is exact", wire.MachinesArgs{PendingUpdate: "KB503444"}, false},
		{"pending update absent", wire.MachinesArgs{PendingUpdate: "curl"}, false},
		{"all match", wire.MachinesArgs{Client: "acme", Readiness: wire.StateDegraded, Online: &yes, PendingUpdate: "OpenSSL"}, true},
		{"one fails", wire.MachinesArgs{Client: "acme", Readiness: wire.StateDegraded, Online: &no, PendingUpdate: "openssl"}, false},
	}
	for _, tt := range tests {
		if got := Match(&c, &tt.args); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
	empty := card("m2", "acme", "x", wire.StateReady, false)
	if Match(&empty, &wire.MachinesArgs{PendingUpdate: "openssl"}) {
		t.Error("a card without pending updates matched a pending update filter")
	}
}

func TestValidateArgs(t *testing.T) {
	for _, s := range []string{"", wire.StateReady, wire.StateDegraded, wire.StateConsentRequired, wire.StateStale, wire.StateIncomplete} {
		if err := ValidateArgs(&wire.MachinesArgs{Readiness: s}); err != nil {
			t.Errorf("ValidateArgs(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"Ready", "offline", "consent_required", " ready"} {
		err := ValidateArgs(&wire.MachinesArgs{Readiness: s})
		if !errors.Is(err, ErrUnknownState) {
			t.Errorf("ValidateArgs(%q) = %v, want ErrUnknownState", s, err)
			continue
		}
		const list = "ready, degraded, consent-required, stale, incomplete"
		if !strings.Contains(err.Error(), list) || !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("error %q should name %q and list the valid states", err, s)
		}
	}
}
