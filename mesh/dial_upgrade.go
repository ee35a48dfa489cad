package mesh

import (
	"context"
	"net/netip"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// upgrade moves a relayed session to the direct path once a probe is
// answered: the route behind the connection's virtual address changes, the
// agent's QUIC server validates the new path and migrates, and the relay
// closes after a grace period. The move is confirmed when pings are
// answered while nothing more arrives through the relay.
func (s *Session) upgrade(ctx context.Context, cfg DialConfig, pc pathConn, pr *prober, v netip.AddrPort, relay *pump) {
	addr, ok := s.awaitProbe(ctx, cfg, pr)
	if !ok {
		return
	}
	pc.setRoute(v, addr)
	if !s.confirmDirect(ctx, cfg, relay, addr) {
		return
	}
	if s.Path().Kind != wire.PathDirectQUIC {
		cfg.Logger.Info("the agent did not move to the direct path; staying on the relay", "session", s.ID, "remote", addr)
		pc.setRoute(v, relay.addr())
		return
	}
	g := time.NewTimer(cfg.RelayGrace)
	defer g.Stop()
	select {
	case <-ctx.Done():
	case <-g.C:
		relay.close()
	}
}

// awaitProbe waits, PunchTimeout at most, for a probe to get through, and
// returns the address it reached if the session can move there.
func (s *Session) awaitProbe(ctx context.Context, cfg DialConfig, pr *prober) (netip.AddrPort, bool) {
	t := time.NewTimer(cfg.PunchTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return netip.AddrPort{}, false
	case <-t.C:
		cfg.Logger.Info("no direct path; staying on the relay", "session", s.ID)
		return netip.AddrPort{}, false
	case <-pr.Found():
	}
	addr := pr.Addr()
	if !addr.Addr().Is4() {
		// The virtual address is IPv4; quic-go's ECN control messages must
		// match the family of the address it thinks it sends to.
		cfg.Logger.Info("direct path is IPv6; staying on the relay", "session", s.ID, "remote", addr)
		return netip.AddrPort{}, false
	}
	return addr, true
}

// confirmDirect pings, 50 times at most, until two pings in a row are
// answered while nothing arrives through the relay: then the agent has
// migrated, and the session's path becomes addr. It returns false only if
// ctx ended first.
func (s *Session) confirmDirect(ctx context.Context, cfg DialConfig, relay *pump, addr netip.AddrPort) bool {
	quiet := 0
	for range 50 {
		before := relay.in.Load()
		pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := s.Ping(pctx)
		pcancel()
		if ctx.Err() != nil {
			return false
		}
		if err == nil && relay.in.Load() == before {
			if quiet++; quiet >= 2 {
				s.setPath(Path{Kind: wire.PathDirectQUIC, Remote: addr.String()})
				cfg.Logger.Info("session moved to a direct path", "session", s.ID, "remote", addr)
				return true
			}
		} else {
			quiet = 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
