package turnserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/turn/v5"

	"github.com/readymesh/readymesh/mesh/internal/pionlog"
)

// Server answers STUN Binding requests and serves TURN allocations on one
// UDP socket.
type Server struct {
	// Immutable after New.
	cfg  settings
	log  *slog.Logger
	conn net.PacketConn
	turn *turn.Server

	// Counters, updated by pion's callbacks on its read loop and relay
	// goroutines.
	open     atomic.Int64 // allocations created and not yet deleted
	created  atomic.Uint64
	refused  atomic.Uint64
	authFail atomic.Uint64
	relayed  atomic.Uint64

	// relays counts relay sockets not yet closed. Add happens on pion's
	// read loop, which has stopped before Close waits.
	relays sync.WaitGroup

	// Log limiters for what clients can trigger at will.
	authLog, quotaLog limiter

	closeOnce sync.Once
	closeErr  error
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Allocations is the number of allocations created and not yet
	// deleted.
	Allocations int
	// AllocationsCreated counts allocations made since New.
	AllocationsCreated uint64
	// AllocationsRefused counts allocation requests refused because
	// MaxAllocations were open.
	AllocationsRefused uint64
	// AuthFailures counts TURN requests refused for their credentials:
	// malformed or expired usernames, and wrong passwords.
	AuthFailures uint64
	// RelayedBytes counts UDP payload bytes that crossed relay sockets,
	// in either direction. A packet relayed between two clients of this
	// server leaves one relay socket and enters another, so counts twice.
	RelayedBytes uint64
}

// stopTimeout bounds how long Close waits for pion's workers.
const stopTimeout = 5 * time.Second

// New starts a server. It listens on cfg.ListenAddr unless cfg.PacketConn
// is set, and serves until Close.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	relayNet := cfg.RelayNet
	if relayNet == nil {
		n, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("turnserver: open host network: %w", err)
		}
		relayNet = n
		cfg.RelayNet = n
	}
	conn := cfg.PacketConn
	if conn == nil {
		c, err := relayNet.ListenPacket("udp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("turnserver: listen on %s: %w", cfg.ListenAddr, err)
		}
		conn = c
	}
	st, err := cfg.resolve(conn.LocalAddr())
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	s := &Server{cfg: st, log: st.Logger.With("component", "turnserver"), conn: conn}
	s.turn, err = turn.NewServer(s.pionConfig())
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("turnserver: start: %w", err)
	}
	s.log.Info("STUN/TURN server listening", "addr", conn.LocalAddr(), "relay_ip", st.RelayIP,
		"realm", st.Realm, "max_allocations", st.MaxAllocations)
	return s, nil
}

func (s *Server) pionConfig() turn.ServerConfig {
	return turn.ServerConfig{
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: s.conn,
			RelayAddressGenerator: &relayAllocator{
				net: s.cfg.RelayNet, bindIP: s.cfg.bindIP, relayIP: s.cfg.RelayIP, srv: s,
			},
			PermissionHandler: s.permit,
		}},
		LoggerFactory:      pionlog.Factory{Log: s.log},
		Realm:              s.cfg.Realm,
		AuthHandler:        s.authenticate,
		QuotaHandler:       s.quota,
		AllocationLifetime: s.cfg.AllocationLifetime,
		EventHandler: turn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
			OnAllocationDeleted: s.onAllocationDeleted,
		},
	}
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.conn.LocalAddr() }

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Allocations:        int(s.open.Load()),
		AllocationsCreated: s.created.Load(),
		AllocationsRefused: s.refused.Load(),
		AuthFailures:       s.authFail.Load(),
		RelayedBytes:       s.relayed.Load(),
	}
}

// Close stops the server and frees every allocation. It is idempotent.
//
// The order matters: closing the listening socket first ends pion's read
// loop, so no allocation can be created while the others are torn down;
// pion then closes every relay socket, and each relay goroutine deletes its
// allocation and exits. Close waits for both, up to a bound.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if err := s.turn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("turnserver: close: %w", err))
		}
		if !s.waitStopped(stopTimeout) {
			errs = append(errs, fmt.Errorf("%w: %d allocations still open after %v", ErrClosed, s.open.Load(), stopTimeout))
		}
		s.closeErr = errors.Join(errs...)
		s.log.Info("STUN/TURN server closed", "addr", s.conn.LocalAddr())
	})
	return s.closeErr
}

// waitStopped waits until every relay socket is closed and every
// allocation deleted, or d passes.
func (s *Server) waitStopped(d time.Duration) bool {
	closed := make(chan struct{})
	go func() { // exits when the last relay socket closes; bounded by pion's own Close
		s.relays.Wait()
		close(closed)
	}()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	select {
	case <-closed:
	case <-deadline.C:
		return false
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for s.open.Load() > 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			return false
		}
	}
	return true
}

// authenticate is pion's AuthHandler: it accepts TURN REST usernames that
// have not expired and returns the long-term key derived from the password
// Credentials would have minted. pion then checks the request's
// MESSAGE-INTEGRITY against it, which is where a wrong password fails.
func (s *Server) authenticate(ra *turn.RequestAttributes) (userID string, key []byte, ok bool) {
	user, _, err := parseUsername(ra.Username, time.Now())
	if err != nil {
		s.authFail.Add(1)
		if s.authLog.allow() {
			s.log.Info("TURN request refused", "from", ra.SrcAddr, "method", ra.Method.String(),
				"username", truncate(ra.Username, 80), "reason", err)
		}
		return "", nil, false
	}
	// The realm is ours, not the one the client sent: a client that
	// claims another realm computes another key and fails the check.
	password := restPassword(s.cfg.Secret, ra.Username)
	return user, turn.GenerateAuthKey(ra.Username, s.cfg.Realm, password), true
}

// onAuth sees the verdict of pion's integrity check, made after
// authenticate accepted the username.
func (s *Server) onAuth(src, _ net.Addr, _, username, _, method string, verdict bool) {
	if verdict {
		return
	}
	s.authFail.Add(1)
	if s.authLog.allow() {
		s.log.Info("TURN request refused", "from", src, "method", method,
			"username", truncate(username, 80), "reason", "wrong password")
	}
}

// quota is pion's QuotaHandler. pion calls it and creates the allocation
// on its single read loop, so the count it reads is never stale by more
// than deletions.
func (s *Server) quota(userID, _ string, src net.Addr) bool {
	if s.cfg.MaxAllocations < 0 || s.open.Load() < int64(s.cfg.MaxAllocations) {
		return true
	}
	s.refused.Add(1)
	if s.quotaLog.allow() {
		s.log.Warn("TURN allocation refused: MaxAllocations reached", "from", src, "user", userID,
			"max_allocations", s.cfg.MaxAllocations)
	}
	return false
}

func (s *Server) permit(client net.Addr, peer net.IP) bool {
	if s.cfg.PermitPeer(peer) {
		return true
	}
	s.log.Debug("TURN permission refused", "from", client, "peer", peer)
	return false
}

func (s *Server) onAllocationCreated(src, _ net.Addr, _, userID, _ string, relay net.Addr, _ int) {
	s.open.Add(1)
	s.created.Add(1)
	s.log.Debug("TURN allocation created", "from", src, "user", userID, "relay", relay)
}

func (s *Server) onAllocationDeleted(src, _ net.Addr, _, userID, _ string) {
	s.open.Add(-1)
	s.log.Debug("TURN allocation deleted", "from", src, "user", userID)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// limiter allows one event a second; it keeps floods of refused requests
// out of the logs (Stats still counts every one).
type limiter struct {
	last atomic.Int64 // unix nanoseconds of the last allowed event
}

func (l *limiter) allow() bool {
	now := time.Now().UnixNano()
	last := l.last.Load()
	return now-last >= int64(time.Second) && l.last.CompareAndSwap(last, now)
}
