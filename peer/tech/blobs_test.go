package tech_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/broker/brokertest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// failingReader fails after its first n bytes.
type failingReader struct {
	data []byte
	n    int64
}

var errDisk = errors.New("disk gone")

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.n {
		return 0, errDisk
	}
	return copy(p[:min(int64(len(p)), r.n-off)], r.data[off:]), nil
}

// TestUploadBlob: an upload sends a blob whole; a second sends nothing;
// one the broker holds part of resumes there; a failing source ends the
// upload at once.
func TestUploadBlob(t *testing.T) {
	ctx, home, c := blobBroker(t)
	blob := randomBlob

	data, sha := blob(2*store.BlobChunk + 100)
	size := int64(len(data))
	if sent, err := c.UploadBlob(ctx, sha, size, bytes.NewReader(data)); err != nil || sent != size {
		t.Fatalf("UploadBlob = %d, %v; want %d sent", sent, err, size)
	}
	if have, err := c.BlobHas(ctx, sha, size); err != nil || have != size {
		t.Fatalf("BlobHas = %d, %v", have, err)
	}
	if sent, err := c.UploadBlob(ctx, sha, size, bytes.NewReader(data)); err != nil || sent != 0 {
		t.Errorf("a second UploadBlob = %d, %v; want nothing sent", sent, err)
	}

	// Another blob, of which the broker holds the first chunk: an upload
	// by the same key cut off after 1.5 chunks.
	data, sha = blob(3 * store.BlobChunk)
	size = int64(len(data))
	cutOff(t, ctx, home, c.Config.Broker, sha, data[:store.BlobChunk*3/2], size)
	if have, err := c.BlobHas(ctx, sha, size); err != nil || have != store.BlobChunk {
		t.Fatalf("after the cut-off upload the broker holds %d, %v; want one chunk", have, err)
	}
	if sent, err := c.UploadBlob(ctx, sha, size, bytes.NewReader(data)); err != nil || sent != size-store.BlobChunk {
		t.Errorf("resumed UploadBlob = %d, %v; want the %d bytes after the first chunk", sent, err, size-store.BlobChunk)
	}

	data, sha = blob(2 * store.BlobChunk)
	size = int64(len(data))
	_, err := c.UploadBlob(ctx, sha, size, failingReader{data: data, n: store.BlobChunk + 5})
	if !errors.Is(err, errDisk) {
		t.Errorf("UploadBlob from a failing source = %v, want its error", err)
	}
	if have, err := c.BlobHas(ctx, sha, size); err != nil || have != store.BlobChunk {
		t.Errorf("after a failing source the broker holds %d, %v; want the chunk that came whole", have, err)
	}
	var werr *wire.Error
	bad := bytes.Repeat([]byte{1}, 10)
	if _, err := c.UploadBlob(ctx, sha[:60]+"0000", 10, bytes.NewReader(bad)); !errors.As(err, &werr) || werr.Code != wire.CodeBadRequest {
		t.Errorf("UploadBlob of bytes that do not hash to the name = %v, want a bad_request refusal", err)
	}
}

// cutOff sends part of a put from the technician's key on a host of its
// own, then closes its side: the broker keeps the whole chunks.
func cutOff(t *testing.T, ctx context.Context, home string, info wire.BrokerInfo, sha string, part []byte, size int64) {
	t.Helper()
	s := putPart(t, ctx, home, info, sha, part, size)
	defer s.Close()
	s.CloseWrite()
	var rep wire.BlobReply
	if err := wire.NewReader(s).Read(wire.MaxControl, &rep); err != nil || rep.Error == nil {
		t.Fatalf("a cut-off upload: %+v, %v; want a refusal", rep, err)
	}
}

// blobBroker runs a broker in this process and logs in to it as its
// admin, for 30 s at most; the client closes when the test ends.
func blobBroker(t *testing.T) (context.Context, string, *tech.Client) {
	t.Helper()
	cred := brokertest.Run(t, t.TempDir())
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := tech.Login(ctx, home, "", cred)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ctx, home, c
}

// randomBlob is n random bytes and their SHA-256 in hex.
func randomBlob(n int) ([]byte, string) {
	data := make([]byte, n)
	rand.Read(data)
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

// putPart opens a put of blob sha from the technician's key on a host of
// its own (closed when the test ends) and sends part of it.
func putPart(t *testing.T, ctx context.Context, home string, info wire.BrokerInfo, sha string, part []byte, size int64) network.Stream {
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
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wire.Write(s, &wire.BlobRequest{Versions: wire.OurVersions(), Op: wire.BlobPut, SHA256: sha, Size: size}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(part); err != nil {
		t.Fatal(err)
	}
	return s
}
