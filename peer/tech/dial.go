package tech

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// connect dials the broker until it admits the connection or ctx ends.
//
// A broker in a reconnect storm refuses new connections past its accept
// rate (bridge.HostConfig.AcceptRate) before their handshake; a
// technician's command then tries again after a short jittered pause
// rather than failing, so thousands of returning agents delay it by a
// moment but never turn it away. A busy broker may also drop a refusal it
// has no room to send (quic-go queues only a few), and then the dial hears
// nothing: QUIC retransmits its Initial ever more slowly (0.3, 0.6,
// 1.2, 2.4 s…), so one try would wait out most of ctx. Each try is
// therefore bounded by attemptLimit, and a try that heard nothing is
// tried again with a fresh connection like a refused one.
func connect(ctx context.Context, h host.Host, ai peer.AddrInfo) error {
	wait := 50 * time.Millisecond
	force := false
	for {
		actx := ctx
		if force {
			// libp2p puts a failed address on a dial backoff of 5 s and
			// more; a retry the broker asked for skips it.
			actx = network.WithForceDirectDial(ctx, "retry after the broker refused or did not answer")
		}
		actx, cancel := context.WithTimeout(actx, attemptLimit)
		err := h.Connect(actx, ai)
		silent := err != nil && actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil || !(refused(err) || silent) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait/2 + rand.N(wait)):
		}
		wait = min(2*wait, time.Second)
		force = true
	}
}

// attemptLimit bounds one try of connect: a QUIC and TLS handshake takes
// two round trips, well under a second even on a satellite link, so a try
// that has heard nothing after this long was dropped. Tests shorten it.
var attemptLimit = 3 * time.Second

// refused reports whether a dial failed because the broker refused the
// connection (QUIC CONNECTION_REFUSED), as it does past its accept rate.
func refused(err error) bool {
	return strings.Contains(err.Error(), "CONNECTION_REFUSED")
}
