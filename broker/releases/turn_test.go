package releases

import (
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestTurnGivesUpWhenGone: a download waiting for a slot gives its place
// up as soon as its stream is gone, not at QueueWait (an hour here).
func TestTurnGivesUpWhenGone(t *testing.T) {
	st := fleettest.Open(t)
	n := &notes{}
	r := New(Config{MaxDownloads: 1, QueueWait: time.Hour},
		Deps{Blobs: st, Records: st, Cluster: alone{}, Keys: alone{}, Audit: n, Replication: n})
	t.Cleanup(r.Close)
	busy, err := r.turn(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(busy.done)
	gone := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		pl, err := r.turn(nil, gone)
		if err == nil {
			pl.done()
		}
		res <- err
	}()
	close(gone)
	select {
	case err := <-res:
		var werr *wire.Error
		if werr, _ = err.(*wire.Error); werr == nil || werr.Code != wire.CodeUnavailable {
			t.Errorf("a waiter whose stream is gone = %v, want an unavailable refusal", err)
		}
	case <-time.After(time.Minute): // a bound on the test, far below QueueWait
		t.Fatal("a waiter whose stream is gone still waits")
	}
}

// resetStream is a stream whose Reset is recorded; nothing else of it
// is used.
type resetStream struct {
	network.Stream
	once  sync.Once
	reset chan struct{}
}

func (s *resetStream) Reset() error { s.once.Do(func() { close(s.reset) }); return nil }

// TestClaimUploadSupersedes: a technician's new put resets the running
// one and takes the claim once it has returned.
func TestClaimUploadSupersedes(t *testing.T) {
	r, _, _, _ := newTestRoom(t)
	id := peer.ID("technician")
	old := &resetStream{reset: make(chan struct{})}
	release, err := r.claimUpload(id, old)
	if err != nil {
		t.Fatal(err)
	}
	go func() { <-old.reset; release() }() // the old put ends on the reset
	release2, err := r.claimUpload(id, &resetStream{reset: make(chan struct{})})
	if err != nil {
		t.Fatalf("a second put by the same technician = %v, want it to supersede the first", err)
	}
	release2()
}
