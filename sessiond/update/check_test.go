package update

import (
	"errors"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestCheck: an order is taken only when its manifest verifies with the
// pinned key and names a release this agent may install; each refusal
// says why.
func TestCheck(t *testing.T) {
	key, other := newReleaseKey(t), newReleaseKey(t)
	bin := wire.ReleaseBinary{SHA256: strings.Repeat("ab", 32), Size: 1000}
	good := manifest("0.3.0", bin)
	tampered := key.order(t, good)
	tampered.Manifest = []byte(strings.Replace(string(tampered.Manifest), "0.3.0", "0.3.1", 1))
	tampered.Version = "0.3.1"
	renamed := key.order(t, good)
	renamed.Version = "0.4.0"
	elsewhere := good
	elsewhere.Binaries = []wire.ReleaseBinary{{Platform: "linux/amd64", SHA256: bin.SHA256, Size: bin.Size}}
	if here == "linux/amd64" {
		elsewhere.Binaries[0].Platform = "linux/arm64"
	}
	old := manifest("0.1.0", bin)
	rollback := key.order(t, old)
	rollback.Rollback = true
	newer := manifest("0.3.0", bin)
	newer.MinAgent = "0.2.5"
	for _, tc := range []struct {
		name    string
		order   *wire.UpdateOrder
		pinned  string
		is      error
		refusal string // substring; "" means taken
	}{
		{"taken", key.order(t, good), key.text(), nil, ""},
		{"no key pinned", key.order(t, good), "", ErrNoKey, "sessiond trust-release-key"},
		{"another key", other.order(t, good), key.text(), nil, "not signed by the pinned release key"},
		{"manifest changed after signing", tampered, key.text(), nil, "signature does not verify"},
		{"order names another version", renamed, key.text(), nil, "the order is for release 0.4.0 but its signed manifest is release 0.3.0"},
		{"no binary for this platform", key.order(t, elsewhere), key.text(), nil, "has no binary for " + here},
		{"same version", key.order(t, manifest("0.2.0", bin)), key.text(), nil, "is the version running here already"},
		{"downgrade", key.order(t, old), key.text(), nil, "older than the running 0.2.0: only a rollback rollout"},
		{"downgrade in a rollback", rollback, key.text(), nil, ""},
		{"below the minimum agent", key.order(t, newer), key.text(), nil, "updates agents from 0.2.5 on; this agent is 0.2.0"},
		{"pinned key unreadable", key.order(t, good), "RWnotakey", nil, "the pinned release key cannot be read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := Check(tc.order, tc.pinned, "0.2.0", here)
			if tc.refusal == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if plan.Binary.SHA256 != bin.SHA256 || plan.Manifest.Version != tc.order.Version {
					t.Fatalf("plan %+v", plan)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.refusal) {
				t.Fatalf("error %v, want %q", err, tc.refusal)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v is not %v", err, tc.is)
			}
		})
	}
}
