package tech_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"github.com/readymesh/readymesh/broker/brokertest"
	"path/filepath"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestUploadSupersedesStalled: an upload whose sender went quiet (cut
// off on the technician's side, not yet noticed by the broker) does not
// keep the technician's claim: the rerun supersedes it and resumes at
// what it committed.
func TestUploadSupersedesStalled(t *testing.T) {
	cred := brokertest.Run(t, t.TempDir())
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := tech.Login(ctx, home, "", cred)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 3*store.BlobChunk)
	rand.Read(data)
	sum := sha256.Sum256(data)
	sha, size := hex.EncodeToString(sum[:]), int64(len(data))

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
	key, err := identity.Load(filepath.Join(home, tech.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ai, err := bridge.AddrInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, ai); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(ctx, ai.ID, wire.ProtoRelease)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wire.Write(s, &wire.BlobRequest{Versions: wire.OurVersions(), Op: wire.BlobPut, SHA256: sha, Size: size}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(part); err != nil {
		t.Fatal(err)
	}
}
