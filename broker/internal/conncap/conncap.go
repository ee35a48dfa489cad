// Package conncap bounds the connections a listener holds open: in total,
// and per client address. It exists for the broker's HTTP port, the one
// door that strangers reach before they have signed in. Without a bound,
// anyone who can reach the port holds one file descriptor per idle
// connection for as long as they like, until the broker can accept no
// more bridges, sign-ins or metric scrapes.
//
// A connection over a bound is closed as soon as it is accepted, before a
// byte of it is read: the server behind the listener never sees it, and
// Accept goes on to the next one, so a flood costs an accept and a close
// each, not a goroutine.
//
// The per-address counts are keyed by the peer's IP address (IPv6 by its
// /64, which one host usually holds whole) and live only while that
// address has a connection open: an entry is deleted when its count falls
// to zero, and there are never more entries than open connections, so
// what a caller sends cannot become a long-lived key.
package conncap

import (
	"net"
	"net/netip"
	"sync"
)

// Refusal reasons, passed to Config.OnRefuse.
const (
	// ReasonTotal: the listener holds Config.Total connections.
	ReasonTotal = "total"
	// ReasonPerAddr: the peer's address holds Config.PerAddr connections.
	ReasonPerAddr = "per_addr"
)

// Config bounds a Listener.
type Config struct {
	// Total bounds the connections open at once. It must be positive.
	Total int
	// PerAddr bounds the connections open at once from one client
	// address. It must be positive; a value at or above Total means the
	// total bound alone applies.
	PerAddr int
	// OnRefuse, if not nil, is called with ReasonTotal or ReasonPerAddr
	// and the peer's address for each connection closed at accept, from
	// the goroutine calling Accept. It must not block.
	OnRefuse func(reason string, remote net.Addr)
}

// Listener is a net.Listener that closes, at accept, the connections
// beyond its bounds. It starts no goroutine.
type Listener struct {
	net.Listener
	cfg Config // immutable after Wrap

	mu     sync.Mutex
	total  int                  // mu guards all following fields
	byAddr map[netip.Prefix]int // open connections per address; no zero entries
}

// Wrap returns ln bounded by cfg. Closing the Listener closes ln;
// connections it accepted stay open until their own Close.
func Wrap(ln net.Listener, cfg Config) *Listener {
	return &Listener{Listener: ln, cfg: cfg, byAddr: map[netip.Prefix]int{}}
}

// Accept returns the next connection within the bounds. Connections over
// them are closed and skipped; an error is the inner listener's.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := addrKey(c.RemoteAddr())
		if reason := l.admit(key); reason != "" {
			c.Close()
			if l.cfg.OnRefuse != nil {
				l.cfg.OnRefuse(reason, c.RemoteAddr())
			}
			continue
		}
		return &conn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

// Open returns how many accepted connections are open, and from how many
// addresses.
func (l *Listener) Open() (conns, addrs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, len(l.byAddr)
}

// admit counts a connection from key, or returns why it may not open.
func (l *Listener) admit(key netip.Prefix) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.cfg.Total {
		return ReasonTotal
	}
	if l.byAddr[key] >= l.cfg.PerAddr {
		return ReasonPerAddr
	}
	l.total++
	l.byAddr[key]++
	return ""
}

// release uncounts a closed connection from key, and forgets key when it
// has none left.
func (l *Listener) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byAddr[key]--; l.byAddr[key] <= 0 {
		delete(l.byAddr, key)
	}
}

// addrKey is the address a connection is counted under: its IP, an IPv6
// address by its /64. An address that is not IP (a pipe, a Unix socket)
// is counted under the zero Prefix, shared by all such connections.
func addrKey(a net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	case ip.Is6():
		p, _ := ip.WithZone("").Prefix(64)
		return p
	}
	return netip.Prefix{}
}

// conn is an accepted connection that uncounts itself once, on its first
// Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite passes a half-close through, so net/http can end a response
// to a connection it will not read further (it looks for this method).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// NetConn returns the accepted connection, as crypto/tls's Conn does.
func (c *conn) NetConn() net.Conn { return c.Conn }
