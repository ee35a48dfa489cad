package integration

import (
	"os/exec"
	"strings"
	"testing"

	// Linked here so the known-good set is checked as one build, before the
	// packages that will use them (cluster, data path) exist.
	_ "github.com/hashicorp/memberlist"
	_ "github.com/pion/webrtc/v4"
)

// TestKnownGoodDependencySet fails when a dependency drifts from the set
// that is known to build and work together on Go 1.26: go-libp2p v0.51.0
// needs quic-go v0.64.1 (v0.65.0 breaks its webtransport dependency).
func TestKnownGoodDependencySet(t *testing.T) {
	want := map[string]string{
		"github.com/libp2p/go-libp2p":     "v0.51.0",
		"github.com/quic-go/quic-go":      "v0.64.1",
		"github.com/pion/webrtc/v4":       "v4.2.26",
		"github.com/hashicorp/memberlist": "v0.7.0",
		"go.etcd.io/bbolt":                "v1.5.0",
	}
	// The versions the go command selects for this module (minimal version
	// selection over go.mod), which is what every build here links.
	args := []string{"list", "-m", "-f", "{{.Path}} {{.Version}}"}
	for mod := range want {
		args = append(args, mod)
	}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if path, v, ok := strings.Cut(line, " "); ok {
			got[path] = v
		}
	}
	for mod, v := range want {
		if got[mod] != v {
			t.Errorf("%s is %q, the known-good set has %s", mod, got[mod], v)
		}
	}
}
