package update

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// step is how the blob server answers one get.
type step struct {
	refuse *wire.Error // refuse with this error
	upTo   int64       // send the blob up to this offset; 0 means to its end
	extra  []byte      // then these bytes, past the blob's end
	stall  bool        // then send nothing more, keeping the stream open
}

// blobServer serves wire.ProtoRelease gets from a bridge host on
// loopback, as a broker does, following one step per request.
type blobServer struct {
	host  host.Host
	data  []byte
	steps []step

	mu      sync.Mutex // guards the following
	offsets []int64    // the offset of each get, in order
}

func newBlobServer(t *testing.T, data []byte, steps ...step) *blobServer {
	t.Helper()
	h := newHost(t, []string{"127.0.0.1:0"})
	b := &blobServer{host: h, data: data, steps: steps}
	h.SetStreamHandler(wire.ProtoRelease, b.serve)
	return b
}

func (b *blobServer) serve(s network.Stream) {
	defer s.Close()
	var req wire.BlobRequest
	r := wire.NewReader(s)
	if err := r.Read(wire.MaxControl, &req); err != nil || req.Op != wire.BlobGet {
		s.Reset()
		return
	}
	b.mu.Lock()
	st := b.steps[min(len(b.offsets), len(b.steps)-1)]
	b.offsets = append(b.offsets, req.Offset)
	b.mu.Unlock()
	if st.refuse != nil {
		wire.Write(s, &wire.BlobReply{Error: st.refuse})
		return
	}
	end := int64(len(b.data))
	if st.upTo > 0 {
		end = min(st.upTo, end)
	}
	wire.Write(s, &wire.BlobReply{Versions: wire.OurVersions(), Have: int64(len(b.data))})
	if req.Offset < end {
		s.Write(b.data[req.Offset:end])
	}
	s.Write(st.extra)
	if st.stall {
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		s.Read(make([]byte, 1)) // until the downloader gives up on the stream
	}
}

// gets returns the offsets the server was asked for.
func (b *blobServer) gets() []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int64(nil), b.offsets...)
}

func newHost(t *testing.T, listen []string) host.Host {
	t.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(testdir.New(t), "key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key, Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// fetcher returns a Fetcher on a new host connected to srv.
func fetcher(t *testing.T, srv *blobServer) *Fetcher {
	t.Helper()
	h := newHost(t, nil)
	ai := peer.AddrInfo{ID: srv.host.ID(), Addrs: srv.host.Addrs()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, ai); err != nil {
		t.Fatal(err)
	}
	return &Fetcher{Host: h, Broker: func(context.Context) (peer.ID, error) { return srv.host.ID(), nil },
		Dir: testdir.New(t), ChunkTimeout: time.Second, Tries: 2, Logger: testLogger(t)}
}

func blob(t *testing.T, n int) ([]byte, wire.ReleaseBinary) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	sum := sha256.Sum256(data)
	return data, wire.ReleaseBinary{Platform: here, SHA256: hex.EncodeToString(sum[:]), Size: int64(n)}
}

// TestFetch: a download over a real libp2p stream ends with exactly the
// blob the manifest names, resumes where a cut or stalled stream left it,
// never keeps more than the manifest's size, and discards what does not
// match the manifest's hash.
func TestFetch(t *testing.T) {
	data, bin := blob(t, 300<<10)
	tampered := bytes.Clone(data)
	tampered[1000] ^= 1
	for _, tc := range []struct {
		name   string
		serve  []byte
		steps  []step
		gets   []int64 // the offsets asked for
		refuse string  // substring of the error; "" means it succeeds
	}{
		{name: "whole", steps: []step{{}}, gets: []int64{0}},
		{name: "resumed after a cut stream", steps: []step{{upTo: 100 << 10}, {upTo: 200 << 10}, {}}, gets: []int64{0, 100 << 10, 200 << 10}},
		{name: "resumed after a stall", steps: []step{{upTo: 64 << 10, stall: true}, {}}, gets: []int64{0, 64 << 10}},
		{name: "more than the manifest's size", steps: []step{{extra: []byte("and a payload the manifest never named")}}, gets: []int64{0}},
		{name: "tampered bytes", serve: tampered, steps: []step{{}}, gets: []int64{0}, refuse: "SHA-256 mismatch"},
		{name: "withdrawn", steps: []step{{refuse: &wire.Error{Code: wire.CodeGone, Message: "release withdrawn"}}}, gets: []int64{0},
			refuse: "release withdrawn"},
		{name: "no progress", steps: []step{{upTo: 10 << 10}, {upTo: 10 << 10}}, gets: []int64{0, 10 << 10, 10 << 10},
			refuse: "2 attempts in a row brought nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve := data
			if tc.serve != nil {
				serve = tc.serve
			}
			srv := newBlobServer(t, serve, tc.steps...)
			f := fetcher(t, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			path, err := f.Fetch(ctx, bin)
			if got := srv.gets(); !slices.Equal(got, tc.gets) {
				t.Errorf("gets at %v, want %v", got, tc.gets)
			}
			part := filepath.Join(f.Dir, bin.SHA256+".part")
			if tc.refuse != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("error %v, want %q", err, tc.refuse)
				}
				if st, err := os.Stat(part); err == nil && (st.Size() > bin.Size || tc.serve != nil) {
					t.Errorf("a %d-byte download was kept", st.Size())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("downloaded %d bytes (%v), not the blob", len(got), err)
			}
		})
	}
}

// TestFetchResumesAcrossCalls: what one Fetch kept, the next one starts
// from.
func TestFetchResumesAcrossCalls(t *testing.T) {
	data, bin := blob(t, 200<<10)
	srv := newBlobServer(t, data, step{upTo: 50 << 10}, step{upTo: 50 << 10}, step{})
	f := fetcher(t, srv)
	f.Tries = 1
	stale := filepath.Join(f.Dir, strings.Repeat("b", 64)+".part")
	os.WriteFile(stale, []byte("a release no longer wanted"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.Fetch(ctx, bin); err == nil {
		t.Fatal("a download that stopped at 50 KiB succeeded")
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the download of another release is still there (%v)", err)
	}
	path, err := f.Fetch(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.gets(); !slices.Equal(got, []int64{0, 50 << 10, 50 << 10}) {
		t.Errorf("gets at %v", got)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("the resumed download is not the blob")
	}
}

// TestFetchRefusesBadBlobs: a manifest entry that cannot name a blob is
// refused before anything is asked.
func TestFetchRefusesBadBlobs(t *testing.T) {
	f := &Fetcher{Dir: testdir.New(t)}
	for _, bin := range []wire.ReleaseBinary{
		{SHA256: "abc", Size: 10},
		{SHA256: strings.Repeat("a", 64), Size: 0},
		{SHA256: strings.Repeat("a", 64), Size: wire.MaxBlob + 1},
		{SHA256: strings.Repeat("A", 64), Size: 10},
	} {
		if _, err := f.Fetch(context.Background(), bin); err == nil || !strings.Contains(err.Error(), "bad blob") {
			t.Errorf("%+v: %v", bin, err)
		}
	}
}
