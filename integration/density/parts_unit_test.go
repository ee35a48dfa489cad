package density

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"testing"
)

// keptForProfile holds what TestReadHeapProfile allocates, so that the
// heap profile shows it live.
var keptForProfile [4][]byte

// allocForProfile allocates 1 MiB in four objects from one site: the
// site's inuse_space (1 MiB) then differs from the size its samples carry
// as a label (256 KiB).
//
//go:noinline
func allocForProfile() (out [4][]byte) {
	for i := range out {
		out[i] = make([]byte, 256<<10)
	}
	return out
}

// TestReadHeapProfile decodes a heap profile this process writes and finds
// a known allocation in it, with its exact size and its stack.
func TestReadHeapProfile(t *testing.T) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1 // every allocation sampled: exact figures
	defer func() { runtime.MemProfileRate = old }()
	keptForProfile = allocForProfile()
	defer func() { keptForProfile = [4][]byte{} }()
	runtime.GC() // the profile shows the heap as of the last completed cycle

	path := filepath.Join(t.TempDir(), "heap.pb.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := readHeapProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	inuse := p.index("inuse_space")
	if inuse < 0 {
		t.Fatalf("no inuse_space in sample types %v", p.types)
	}
	const fn = "github.com/readymesh/readymesh/integration/density.allocForProfile"
	var got int64
	for _, s := range p.samples {
		if slices.Contains(s.stack, fn) {
			got += s.values[inuse]
			if s.stack[0] != fn {
				t.Errorf("stack does not start at the allocation: %v", s.stack)
			}
		}
	}
	if got != 1<<20 {
		t.Errorf("inuse_space under %s = %d, want %d (%d samples decoded)", fn, got, 1<<20, len(p.samples))
	}
}

// TestPartOf checks that stacks seen in the broker's profiles (leaf first)
// are charged to the component that keeps the memory, past shared helpers.
func TestPartOf(t *testing.T) {
	const q, l = "github.com/quic-go/quic-go", "github.com/libp2p/go-libp2p"
	for _, tc := range []struct {
		stack []string
		want  string
	}{
		{[]string{q + ".(*frameSorter).push", q + ".(*frameSorter).Push", q + ".(*ReceiveStream).handleStreamFrameImpl"},
			"quic-go: streams (presence stream, stream maps)"},
		{[]string{q + ".(*frameSorter).push", q + ".(*frameSorter).Push", q + ".(*baseCryptoStream).HandleCryptoFrame"},
			"quic-go: crypto streams (handshake data kept)"},
		{[]string{q + "/internal/utils/ringbuffer.(*RingBuffer[...]).Init", q + ".(*Conn).preSetup"},
			"quic-go: connection (framer, acks, congestion, conn IDs, queues)"},
		{[]string{"crypto/internal/fips140/aes/gcm.New", "crypto/cipher.NewGCM", q + "/internal/handshake.aeadAESGCMTLS13"},
			"tls: quic-go keys and handshake state"},
		{[]string{"crypto/internal/fips140/aes/gcm.NewGCMForTLS13", "crypto/tls.aeadAESGCMTLS13", "crypto/tls.(*halfConn).setTrafficSecret"},
			"tls: crypto/tls connection kept by quic-go"},
		{[]string{"crypto/x509.parseCertificate", "crypto/x509.ParseCertificate", "crypto/tls.(*Conn).processCertsFromClient"},
			"tls: the agent's parsed certificate"},
		{[]string{"runtime.mallocgc", "runtime.newobject", "runtime.malg", "runtime.newproc1"},
			"goroutine descriptors (runtime g)"},
		{[]string{"github.com/mr-tron/base58/base58.Encode", l + "/core/peer.ID.String", "github.com/readymesh/readymesh/broker/reach.(*table).open"},
			"readymesh: broker (presence, readers, tables)"},
		{[]string{l + "/p2p/host/resource-manager.newResourceScope", l + "/p2p/host/resource-manager.(*resourceManager).OpenConnection", l + "/config.(*Config).addTransports.func9.1", q + ".(*baseServer).handleInitialImpl"},
			"libp2p: resource manager"},
		{[]string{"context.withCancel", "context.AfterFunc", l + "/config.(*Config).addTransports.func9.1", q + ".(*baseServer).handleInitialImpl"},
			"libp2p: swarm, host, QUIC transport"},
		{[]string{"compress/flate.NewWriter", "compress/gzip.(*Writer).Write", "github.com/prometheus/client_golang/prometheus/promhttp.HandlerForTransactional.func1"},
			"scrape and profiler in flight (not per agent)"},
		{[]string{"bytes.growSlice", "bytes.(*Buffer).grow"}, otherPart},
	} {
		if got := partOf(tc.stack); got != tc.want {
			t.Errorf("partOf(%v) = %q, want %q", tc.stack, got, tc.want)
		}
	}
}
