package bridge

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/pion/transport/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/peer/identity"
)

// HostConfig configures a bridge host.
type HostConfig struct {
	// Key is the host's identity. It must not be nil.
	Key *identity.Key
	// Listen lists the addresses to listen on, as multiaddrs or host:port
	// (see ListenAddrs). Nil means dial only, as agents and technicians do.
	Listen []string
	// MaxConns bounds the connections the resource manager admits. Brokers
	// set it to the number of bridges they should hold; libp2p's own
	// defaults (a few hundred) are sized for desktop nodes. Zero means
	// libp2p's scaled defaults.
	MaxConns int
	// Quotas bounds, per protocol, the request bytes handlers may buffer
	// at once (see Quota). It applies with MaxConns only. Nil leaves
	// libp2p's scaled defaults for every protocol.
	Quotas map[protocol.ID]Quota
	// AcceptRate bounds the new connections admitted per second from all
	// addresses together, with a burst of as many; MaxHandshakes bounds
	// the connections in their handshake at once. Both apply with MaxConns
	// only; zero means unlimited and libp2p's default. See limits.
	AcceptRate    float64
	MaxHandshakes int
	// Metrics, if not nil, receives libp2p's Prometheus metrics. Nil
	// disables them, so many hosts can live in one process.
	Metrics prometheus.Registerer
	// Net is the network the host's UDP sockets come from. Nil means the
	// host's own network with every bridge transport. A non-nil Net (a
	// pion vnet in tests) carries UDP only, so the host then runs QUIC
	// alone, without SO_REUSEPORT: every socket it listens or dials on is
	// Net's. Listen addresses must then be QUIC multiaddrs or host:port
	// (whose TCP and WebSocket parts are dropped).
	Net transport.Net
}

// NewHost returns a libp2p host with the bridge transports: QUIC, TCP and
// WebSocket, each authenticated by the key. Relay, NAT port mapping and
// hole punching are off here; the data path (package mesh) turns on what it
// needs.
func NewHost(cfg HostConfig) (host.Host, error) {
	if cfg.Key == nil {
		return nil, fmt.Errorf("bridge: HostConfig.Key is nil")
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key.Priv),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.DisableRelay(),
		libp2p.UserAgent(UserAgent()),
	}
	if cfg.Net == nil {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport), libp2p.Transport(websocket.New))
	} else {
		listen := func(network string, laddr *net.UDPAddr) (net.PacketConn, error) {
			return cfg.Net.ListenUDP(network, laddr)
		}
		opts = append(opts, libp2p.QUICReuse(quicreuse.NewConnManager,
			quicreuse.OverrideListenUDP(listen), quicreuse.DisableReuseport()))
	}
	if len(cfg.Listen) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		addrs, err := ListenAddrs(cfg.Listen)
		if err != nil {
			return nil, err
		}
		if cfg.Net != nil {
			addrs = slices.DeleteFunc(addrs, func(a ma.Multiaddr) bool {
				_, err := a.ValueForProtocol(ma.P_QUIC_V1)
				return err != nil
			})
		}
		opts = append(opts, libp2p.ListenAddrs(addrs...))
	}
	if cfg.Metrics != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Metrics))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	if cfg.MaxConns > 0 {
		rm, cm, err := limits(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.ResourceManager(rm), libp2p.ConnectionManager(cm))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("bridge: new host: %w", err)
	}
	return h, nil
}

// ListenAddrs turns listen specs into multiaddrs. A spec is a multiaddr
// (used as is) or host:port, which expands to QUIC on UDP port, TCP on
// port and WebSocket on port+1 (or port 0 for each when port is 0).
func ListenAddrs(specs []string) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, s := range specs {
		if strings.HasPrefix(s, "/") {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				return nil, fmt.Errorf("bridge: listen address %q: %w", s, err)
			}
			out = append(out, a)
			continue
		}
		hostPart, portPart, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("bridge: listen address %q: %w", s, err)
		}
		port, err := strconv.Atoi(portPart)
		if err != nil || port < 0 || port > 65534 {
			return nil, fmt.Errorf("bridge: listen address %q: bad port", s)
		}
		if hostPart == "" {
			hostPart = "0.0.0.0" // ":7400" means every IPv4 address
		}
		ip := net.ParseIP(hostPart)
		if ip == nil {
			return nil, fmt.Errorf("bridge: listen address %q: host must be an IP address", s)
		}
		proto := "ip4"
		if ip.To4() == nil {
			proto = "ip6"
		}
		ws := 0
		if port != 0 {
			ws = port + 1
		}
		for _, f := range []string{"/%s/%s/udp/%d/quic-v1", "/%s/%s/tcp/%d", "/%s/%s/tcp/%d/ws"} {
			p := port
			if strings.HasSuffix(f, "/ws") {
				p = ws
			}
			a, err := ma.NewMultiaddr(fmt.Sprintf(f, proto, ip.String(), p))
			if err != nil {
				return nil, fmt.Errorf("bridge: listen address %q: %w", s, err)
			}
			out = append(out, a)
		}
	}
	return out, nil
}
