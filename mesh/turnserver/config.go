package turnserver

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pion/transport/v5"
)

// Defaults for the zero values of Config.
const (
	DefaultListenAddr     = ":3478"
	DefaultRealm          = "readymesh"
	DefaultMaxAllocations = 1024
	// DefaultAllocationLifetime is the lifetime granted to an allocation a
	// client does not refresh (RFC 8656 recommends 10 minutes).
	DefaultAllocationLifetime = 10 * time.Minute
	// MinSecretLen is the shortest Secret New accepts. Anyone who learns
	// the secret can mint relay credentials, so it must not be guessable.
	MinSecretLen = 16
)

// Config configures a Server. The zero value of each field means its
// documented default; Secret is required, and RelayIP is when the server
// listens on an unspecified address.
type Config struct {
	// PacketConn, if not nil, is the socket STUN and TURN requests arrive
	// on, instead of one opened on ListenAddr. Tests pass a pion vnet
	// socket here. The Server owns it from New on: Close closes it.
	PacketConn net.PacketConn
	// ListenAddr is the UDP "ip:port" to listen on when PacketConn is nil.
	// Port 0 asks the kernel for one (Addr reports it). Empty means
	// ":3478", the registered STUN/TURN port.
	ListenAddr string
	// Realm is the TURN realm, part of the long-term credential key.
	// Empty means "readymesh".
	Realm string
	// RelayIP is the address put in relayed candidates, the one peers send
	// relayed traffic to. It must be reachable by every peer: the broker's
	// public address. Nil means the listen IP; it is required when the
	// server listens on an unspecified address (0.0.0.0 or ::), since that
	// names no address a peer could use. Relay sockets bind to the listen
	// IP when it is specific, else to the unspecified address of RelayIP's
	// family.
	RelayIP net.IP
	// RelayNet opens the relay sockets, and the listening socket when
	// PacketConn is nil. Nil means the host's network; tests pass a pion
	// vnet.Net.
	RelayNet transport.Net
	// Secret is the HMAC key that signs time-limited credentials (see
	// Credentials). At least MinSecretLen bytes; 32 random bytes is right.
	// Required.
	Secret []byte
	// MaxAllocations caps open allocations across all users. Each one is
	// a UDP socket on the broker and may carry a session's traffic, so the
	// cap bounds both file descriptors and relayed bandwidth. Requests
	// beyond it get 486 (Allocation Quota Reached) and ICE falls back to
	// whatever else it has. Zero means 1024; negative means no cap.
	MaxAllocations int
	// AllocationLifetime is how long an allocation lasts unless refreshed
	// (clients refresh well before it ends). Shorter frees the sockets of
	// vanished clients sooner; longer tolerates lost refreshes. Zero means
	// 10 minutes; at most one hour is granted whatever the client asks.
	AllocationLifetime time.Duration
	// PermitPeer decides whether an allocation may send to a peer IP (the
	// TURN CreatePermission and ChannelBind checks). A relay sends from
	// the broker's own network, so whatever it may reach, every holder of
	// credentials may reach. Nil means the default policy: refuse
	// unspecified, multicast, link-local (cloud metadata services sit
	// there) and loopback peers, except that loopback peers are allowed
	// when RelayIP is itself loopback (a server on 127.0.0.1 in tests
	// relays between loopback clients). Private ranges stay allowed, since
	// MSP sites often put agents and brokers on private or CGNAT
	// addresses; a broker next to internal services it must not expose
	// should refuse their ranges here.
	PermitPeer func(peer net.IP) bool
	// Logger receives the server's logs, and pion's at debug level. Nil
	// means discard.
	Logger *slog.Logger
}

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	listenIP net.IP // IP of the listening socket; may be unspecified
	bindIP   net.IP // IP relay sockets bind to
}

func (c Config) withDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.MaxAllocations == 0 {
		c.MaxAllocations = DefaultMaxAllocations
	}
	if c.AllocationLifetime <= 0 {
		c.AllocationLifetime = DefaultAllocationLifetime
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks what can be checked before opening a socket.
func (c Config) validate() error {
	if len(c.Secret) == 0 {
		return fmt.Errorf("%w: Secret is required", ErrConfig)
	}
	if len(c.Secret) < MinSecretLen {
		return fmt.Errorf("%w: Secret is %d bytes, want at least %d", ErrConfig, len(c.Secret), MinSecretLen)
	}
	if c.RelayIP != nil && (c.RelayIP.IsUnspecified() || c.RelayIP.To16() == nil) {
		return fmt.Errorf("%w: RelayIP %v is not an address peers can reach", ErrConfig, c.RelayIP)
	}
	return nil
}

// resolve derives the relay addresses from the socket actually listened on.
func (c Config) resolve(local net.Addr) (settings, error) {
	s := settings{Config: c}
	udp, ok := local.(*net.UDPAddr)
	if !ok {
		return s, fmt.Errorf("%w: listening socket has a %T address, want UDP", ErrConfig, local)
	}
	s.listenIP = udp.IP
	if s.RelayIP == nil {
		if s.listenIP == nil || s.listenIP.IsUnspecified() {
			return s, fmt.Errorf("%w: RelayIP is required when listening on unspecified address %v", ErrConfig, local)
		}
		s.RelayIP = s.listenIP
	}
	switch {
	case s.listenIP != nil && !s.listenIP.IsUnspecified():
		s.bindIP = s.listenIP
	case s.RelayIP.To4() != nil:
		s.bindIP = net.IPv4zero
	default:
		s.bindIP = net.IPv6unspecified
	}
	if (s.bindIP.To4() == nil) != (s.RelayIP.To4() == nil) {
		return s, fmt.Errorf("%w: RelayIP %v and relay bind address %v are of different families", ErrConfig, s.RelayIP, s.bindIP)
	}
	if s.PermitPeer == nil {
		s.PermitPeer = defaultPermitPeer(s.RelayIP.IsLoopback())
	}
	return s, nil
}

// defaultPermitPeer is the peer policy used when Config.PermitPeer is nil.
func defaultPermitPeer(allowLoopback bool) func(net.IP) bool {
	return func(ip net.IP) bool {
		switch {
		case ip.IsUnspecified(), ip.IsMulticast(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
			return false
		case ip.IsLoopback():
			return allowLoopback
		}
		return true
	}
}
