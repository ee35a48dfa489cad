package releases

import (
	"context"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/store"
)

// TestWaitersHoldNoSlot: a download waiting for a pull's bytes gives its
// slot back: with one slot, an agent waiting on a stalled pull does not
// keep another agent from a blob the broker holds. The waiter then gets
// its blob whole. QueueWait and Idle are an hour: a waiter that held
// its slot would block the other download past the test.
func TestWaitersHoldNoSlot(t *testing.T) {
	f := newFleet()
	pulled, held := newBlob(store.BlobChunk+100), newBlob(3*sendBuffer+7)
	stalled := newTrickle(t, f, pulled, 1<<10, time.Millisecond, 0)
	o := newOrigin(t, f, false, nil, pulled, held)
	p := newPuller(t, f, o.st, Config{MaxDownloads: 1, QueueWait: time.Hour, Idle: time.Hour})
	storeBlob(t, p.st, held.data, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()

	first, second := p.agent(t, f), p.agent(t, f)
	replied := make(chan struct{})
	waiter := make(chan error, 1)
	var got []byte
	go func() {
		var err error
		got, err = fetch(ctx, first, p.host.ID(), pulled, replied)
		waiter <- err
	}()
	select {
	case <-replied: // the waiter has had its turn
	case err := <-waiter:
		t.Fatalf("the waiter's download: %v", err)
	}
	other, err := fetch(ctx, second, p.host.ID(), held, nil)
	if err != nil {
		t.Fatalf("a download of a held blob while another waits on a pull: %v", err)
	}
	checkWhole(t, "the other agent", other, held)
	select {
	case err := <-waiter:
		t.Fatalf("the waiter ended before the pull went on: %v", err)
	default:
	}
	close(stalled.resume)
	if err := <-waiter; err != nil {
		t.Fatalf("the waiter's download once the pull goes on: %v", err)
	}
	checkWhole(t, "the waiter", got, pulled)
}
