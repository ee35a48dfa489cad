package store

import (
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestPublishTouchesBlobs: publishing a release marks its binaries used
// then, so a sweep whose view of the releases predates the publication
// (keep says no) still leaves them.
func TestPublishTouchesBlobs(t *testing.T) {
	s, _ := newStore(t)
	bin := newTestBlob(t, 100)
	writeBlob(t, s, bin, 0, t0) // uploaded, then left two days
	if err := s.SetReleaseKey(testKey(keyA, "trust", t0)); err != nil {
		t.Fatal(err)
	}
	published := t0.Add(48 * time.Hour)
	if _, err := s.PublishRelease(testRelease("0.3.0", keyA, published), []wire.ReleaseBinary{binaryOf(bin, "linux/amd64")}, nil); err != nil {
		t.Fatal(err)
	}
	if m, ok := s.BlobHave(bin.sha); !ok || !m.LastUsed.Equal(published) {
		t.Errorf("the binary's last use after its publication: %v (%v), want %v", m.LastUsed, ok, published)
	}
	gone, err := s.SweepBlobs(published.Add(-time.Hour), func(string) bool { return false })
	if err != nil || len(gone) != 0 {
		t.Errorf("a sweep right after the publication deleted %v, %v", gone, err)
	}
}
