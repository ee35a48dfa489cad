package session

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// rttTimeout bounds the ping that measures a technician's round trip.
const rttTimeout = 5 * time.Second

// MeasureRTT pings a newly connected technician once, so the broker knows
// how long an answer takes to reach it and can time the agent's first
// probes to meet the technician's (Offer.PunchDelayMs).
func (s *Service) MeasureRTT(p peer.ID) {
	ctx, cancel := context.WithTimeout(context.Background(), rttTimeout)
	defer cancel()
	select {
	case r := <-ping.Ping(ctx, s.deps.Host, p):
		if r.Error == nil {
			s.deps.Host.Peerstore().RecordLatency(p, r.RTT)
		}
	case <-ctx.Done():
	}
}
