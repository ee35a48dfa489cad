package bridge

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/x/rate"
)

// Quota bounds the request bytes a protocol's handlers may buffer at
// once. Servers reserve each request's length from the stream's resource
// scope before reading its body (broker/internal/serve), so these limits
// hold what callers can make a broker buffer, whatever they announce.
type Quota struct {
	// Total bounds the bytes buffered for the protocol across all peers.
	Total int64
	// PerPeer bounds the bytes buffered for one peer. It must be at least
	// the protocol's largest request.
	PerPeer int64
}

// limits sizes the resource manager, and picks the connection manager,
// for a broker holding up to max bridges. Each bridge holds a few streams at a time (presence,
// one request). Request memory is bounded per protocol by quotas; other
// memory is left to libp2p's scaled defaults.
//
// libp2p's defaults also admit at most 8 concurrent connections per IPv4
// address and, past a burst of 16, one new connection per 5 s per address.
// That suits a public DHT node, not a broker: every PC of an MSP's client
// office arrives from the same NAT address, and after a broker restart they
// all reconnect at once; technicians run meshctl (one connection a call)
// from one address too. So a broker admits up to max connections per
// address and PerIPConnRate new ones per second per address (with a burst
// of the same size), and leaves abuse control to authentication: an
// unknown key gets no record and no stream it may use.
//
// Admission for reconnect storms: after a broker restart every agent comes
// back at once. cfg.AcceptRate bounds new connections per second from all
// addresses together, and cfg.MaxHandshakes the connections still in their
// handshake (libp2p's transient scope, which a QUIC connection enters at
// its ClientHello and leaves once its peer is authenticated). A refused
// agent backs off with jitter and tries again; connections already
// established, and their streams, are not touched.
func limits(cfg HostConfig) (network.ResourceManager, connmgr.ConnManager, error) {
	max, quotas := cfg.MaxConns, cfg.Quotas
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.AutoScale()
	n := rcmgr.LimitVal(max)
	streams := rcmgr.LimitVal(8 * max)
	all := rcmgr.ResourceLimits{Conns: n, ConnsInbound: n, ConnsOutbound: n,
		Streams: streams, StreamsInbound: streams, StreamsOutbound: streams, FD: n}
	// Every bridge keeps one presence stream open, so the per-protocol
	// default (512 inbound streams plus 256 per GiB of an eighth of RAM:
	// 1,265 on a 24 GiB machine) would cap a broker's agents too.
	perProto := rcmgr.ResourceLimits{Streams: streams, StreamsInbound: streams, StreamsOutbound: streams}
	transient := all
	if cfg.MaxHandshakes > 0 {
		h := rcmgr.LimitVal(cfg.MaxHandshakes)
		transient.Conns, transient.ConnsInbound, transient.ConnsOutbound = h, h, h
	}
	partial := rcmgr.PartialLimitConfig{System: all, Transient: transient, ProtocolDefault: perProto,
		ServiceDefault: perProto}
	applyQuotas(&partial, perProto, quotas)
	perIP := []rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: max}}
	perIP6 := []rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: max}}
	burst := rate.Limit{RPS: PerIPConnRate, Burst: int(PerIPConnRate)}
	rl := &rate.Limiter{GlobalLimit: rate.Limit{RPS: cfg.AcceptRate, Burst: burstOf(cfg.AcceptRate)},
		SubnetRateLimiter: rate.SubnetLimiter{
			IPv4SubnetLimits: []rate.SubnetLimit{{PrefixLength: 32, Limit: burst}},
			IPv6SubnetLimits: []rate.SubnetLimit{{PrefixLength: 56, Limit: burst}},
			GracePeriod:      time.Minute,
		}}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(base)),
		rcmgr.WithLimitPerSubnet(perIP, perIP6), rcmgr.WithConnRateLimiters(rl))
	if err != nil {
		return nil, nil, fmt.Errorf("bridge: resource manager: %w", err)
	}
	// No connection manager: a broker must never trim bridges (every one
	// is wanted, and the resource manager already caps them), and libp2p's
	// basic manager keeps tags and a notifee record for every peer, about
	// 0.6 KB per idle agent, to decide trims that never come.
	return rm, &connmgr.NullConnMgr{}, nil
}

// PerIPConnRate is how many new bridges per second a broker admits from
// one address (IPv4, or IPv6 /56), with a burst of as many. 200 a second
// brings a 2,000-PC site back within 10 s of a broker restart, which the
// agents' jittered backoff spreads over about that window anyway.
const PerIPConnRate = 200

// applyQuotas sets each protocol's memory limits from its quota, and the
// per-stream memory limit (libp2p's default is 16 MiB) to the largest
// per-peer quota, so one large request fits a stream.
func applyQuotas(partial *rcmgr.PartialLimitConfig, perProto rcmgr.ResourceLimits, quotas map[protocol.ID]Quota) {
	if len(quotas) == 0 {
		return
	}
	partial.Protocol = map[protocol.ID]rcmgr.ResourceLimits{}
	partial.ProtocolPeer = map[protocol.ID]rcmgr.ResourceLimits{}
	var largest int64
	for id, q := range quotas {
		total := perProto
		total.Memory = rcmgr.LimitVal64(q.Total)
		partial.Protocol[id] = total
		partial.ProtocolPeer[id] = rcmgr.ResourceLimits{Memory: rcmgr.LimitVal64(q.PerPeer)}
		largest = max(largest, q.PerPeer)
	}
	partial.Stream = rcmgr.ResourceLimits{Memory: rcmgr.LimitVal64(max(largest, 16<<20))}
}

// burstOf is the burst of a rate: a second's worth, and at least one.
func burstOf(perSecond float64) int {
	if perSecond < 1 {
		return 1
	}
	return int(perSecond)
}
