package tech_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestUploadSupersedesStalled: an upload whose sender went quiet (cut
// off on the technician's side, not yet noticed by the broker) does not
// keep the technician's claim: the rerun supersedes it and resumes at
// what it committed.
func TestUploadSupersedesStalled(t *testing.T) {
	ctx, home, c := blobBroker(t)
	data, sha := randomBlob(3 * store.BlobChunk)
	size := int64(len(data))

	stalled(t, ctx, home, c.Config.Broker, sha, data[:store.BlobChunk*3/2], size)
	deadline := time.Now().Add(10 * time.Second)
	for have, _ := c.BlobHas(ctx, sha, size); have != store.BlobChunk; have, _ = c.BlobHas(ctx, sha, size) {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled upload committed %d bytes, want its first chunk", have)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sent, err := c.UploadBlob(ctx, sha, size, bytes.NewReader(data))
	if err != nil || sent != size-store.BlobChunk {
		t.Fatalf("UploadBlob beside a stalled upload = %d, %v; want the %d bytes after its chunk", sent, err, size-store.BlobChunk)
	}
	if have, err := c.BlobHas(ctx, sha, size); err != nil || have != size {
		t.Errorf("after the rerun the broker holds %d, %v; want all %d", have, err, size)
	}
}

// stalled starts a put from the technician's key on a host of its own,
// sends part and then nothing, holding the stream open until the test
// ends.
func stalled(t *testing.T, ctx context.Context, home string, info wire.BrokerInfo, sha string, part []byte, size int64) {
	t.Helper()
	s := putPart(t, ctx, home, info, sha, part, size)
	t.Cleanup(func() { s.Reset() })
}
