package releases

import (
	"slices"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestSweepKeepsUnparsed: the binaries of a release whose manifest this
// broker cannot parse (a newer format) are kept; while a manifest names
// no binary it can read at all, nothing is swept.
func TestSweepKeepsUnparsed(t *testing.T) {
	r, st, clk, _ := newTestRoom(t)
	_, pub := newKey(t)
	if _, werr := r.Trust(admin, &wire.ReleaseKeyArgs{PublicKey: pub.String()}); werr != nil {
		t.Fatal(werr)
	}
	newer, orphan := []byte("a binary of a newer format"), []byte("never published")
	newerSHA, orphanSHA := storeBlob(t, st, newer, t0), storeBlob(t, st, orphan, t0)
	bin := wire.ReleaseBinary{Platform: "linux/amd64", SHA256: newerSHA, Size: int64(len(newer))}
	publish := func(version, manifest string) {
		t.Helper()
		rec := store.ReleaseRecord{Version: version, Manifest: []byte(manifest), Signature: "untrusted comment: test\nsig",
			KeyID: pub.ID(), PublishedBy: "admin", PublishedAt: t0}
		if _, err := st.PublishRelease(rec, []wire.ReleaseBinary{bin}, nil); err != nil {
			t.Fatal(err)
		}
	}
	publish("2.0.0", `{"format":"readymesh-release/2","version":"2.0.0","binaries":[{"sha256":"`+newerSHA+`"}],"new":1}`)
	held := func(shas ...string) []string {
		var out []string
		for _, sha := range shas {
			if _, ok := st.BlobHave(sha); ok {
				out = append(out, sha)
			}
		}
		return out
	}
	clk.Set(t0.Add(25 * time.Hour))
	r.Sweep()
	if got := held(newerSHA, orphanSHA); !slices.Equal(got, []string{newerSHA}) {
		t.Errorf("the sweep left %d blobs, want only the unparsed release's", len(got))
	}
	orphan2SHA := storeBlob(t, st, []byte("never published either"), t0)
	publish("3.0.0", `not a manifest this broker reads`)
	r.Sweep()
	if got := held(newerSHA, orphan2SHA); !slices.Equal(got, []string{newerSHA, orphan2SHA}) {
		t.Errorf("with an opaque manifest stored the sweep left %d of 2 blobs, want both", len(got))
	}
}
