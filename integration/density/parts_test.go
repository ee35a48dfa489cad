package density

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The per-part breakdown attributes the broker's heap growth per agent to
// the component that holds it, from the two heap profiles a measurement
// saves with profileEnv set: each sample's stack is walked from the
// allocation outwards and given to the first part whose pattern a frame
// matches. Generic frames (runtime, crypto primitives, bytes, context)
// match none, and helpers shared by many parts (quic-go's frame sorter and
// utilities, libp2p's core types) are skipped, so a state is charged to
// whoever keeps it: an AES-GCM state to crypto/tls for its own record keys
// and to quic-go's handshake package for the 1-RTT keys; a frame sorter to
// the presence stream or to a crypto stream.

// part is one component a frame can belong to.
type part struct {
	name string
	re   *regexp.Regexp
}

// parts is in matching order: for one frame the first match wins.
var parts = []part{
	{"goroutine descriptors (runtime g)", regexp.MustCompile(`^runtime\.malg$`)},
	{"scrape and profiler in flight (not per agent)", regexp.MustCompile(`promhttp|prometheus\.\(\*Registry\)\.Gather|procfs|expfmt|^runtime/pprof|^net/http/pprof`)},
	{"tls: the agent's parsed certificate", regexp.MustCompile(`^crypto/x509\.`)},
	{"tls: crypto/tls connection kept by quic-go", regexp.MustCompile(`^crypto/tls\.`)},
	{"tls: quic-go keys and handshake state", regexp.MustCompile(`quic-go/quic-go/internal/handshake\.`)},
	{"quic-go: crypto streams (handshake data kept)", regexp.MustCompile(`quic-go/quic-go\.(\(\*)?(initialCryptoStream|baseCryptoStream|cryptoStream|newCryptoStream|newInitialCryptoStream|cryptoStreamManager)\b`)},
	{"quic-go: streams (presence stream, stream maps)", regexp.MustCompile(`quic-go/quic-go\.(\(\*)?(streamsMap|incomingStreamsMap|outgoingStreamsMap|newStream|newReceiveStream|newSendStream|ReceiveStream|SendStream|Stream|newStreamFlowController|newIncomingStreamsMap|newOutgoingStreamsMap|newStreamsMap)\b`)},
	{"quic-go: packet buffers (pools)", regexp.MustCompile(`quic-go/quic-go\.(getLargePacketBuffer|getPacketBuffer)$`)},
	{"quic-go: connection (framer, acks, congestion, conn IDs, queues)", regexp.MustCompile(`quic-go/quic-go`)},
	{"libp2p: resource manager", regexp.MustCompile(`go-libp2p/p2p/host/resource-manager`)},
	{"libp2p: connection manager", regexp.MustCompile(`go-libp2p/p2p/net/connmgr`)},
	{"libp2p: identify", regexp.MustCompile(`go-libp2p/p2p/protocol/identify`)},
	{"libp2p: peerstore", regexp.MustCompile(`go-libp2p/p2p/host/peerstore`)},
	{"libp2p: metrics", regexp.MustCompile(`go-libp2p/.*[mM]etrics`)},
	{"libp2p: swarm, host, QUIC transport", regexp.MustCompile(`go-libp2p`)},
	{"readymesh: broker (presence, readers, tables)", regexp.MustCompile(`readymesh/readymesh/`)},
}

// shared matches the helper frames partOf walks past.
var shared = regexp.MustCompile(`quic-go/quic-go/internal/(utils|wire)|quic-go/quic-go\.(\(\*frameSorter\)|newFrameSorter)|go-libp2p/core/`)

const otherPart = "other"

// partOf returns the part a stack (leaf first) belongs to.
func partOf(stack []string) string {
	for _, f := range stack {
		if shared.MatchString(f) {
			continue
		}
		for _, p := range parts {
			if p.re.MatchString(f) {
				return p.name
			}
		}
	}
	return otherPart
}

// breakdown is bytes per agent by part.
type breakdown map[string]float64

// heapParts returns, per part, the growth in typ ("inuse_space" or
// "alloc_space") from before to after, divided by n.
func heapParts(before, after *heapProfile, typ string, n int) (breakdown, error) {
	out := breakdown{}
	for sign, p := range map[float64]*heapProfile{-1: before, 1: after} {
		i := p.index(typ)
		if i < 0 {
			return nil, fmt.Errorf("heap profile has no %s values (types %v)", typ, p.types)
		}
		for _, s := range p.samples {
			if i < len(s.values) {
				out[partOf(s.stack)] += sign * float64(s.values[i]) / float64(n)
			}
		}
	}
	return out, nil
}

// table formats b largest first, then the total.
func (b breakdown) table() string {
	names := make([]string, 0, len(b))
	for name := range b {
		names = append(names, name)
	}
	slices.SortFunc(names, func(x, y string) int {
		switch {
		case b[x] > b[y]:
			return -1
		case b[x] < b[y]:
			return 1
		}
		return strings.Compare(x, y)
	})
	var sb strings.Builder
	var total float64
	for _, name := range names {
		fmt.Fprintf(&sb, "  %-66s %7.0f B\n", name, b[name])
		total += b[name]
	}
	fmt.Fprintf(&sb, "  %-66s %7.0f B\n", "sum", total)
	return sb.String()
}
