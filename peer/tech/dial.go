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
// A broker in a reconnect storm refuses new connections past its accept
// rate (bridge.HostConfig.AcceptRate) before their handshake; a
// technician's command then tries again after a short jittered pause
// rather than failing, so thousands of returning agents delay it by a
// moment but never turn it away.
func connect(ctx context.Context, h host.Host, ai peer.AddrInfo) error {
	wait := 50 * time.Millisecond
	dctx := ctx
	for {
		err := h.Connect(dctx, ai)
		if err == nil || !refused(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait/2 + rand.N(wait)):
		}
		wait = min(2*wait, time.Second)
		// libp2p puts a refused address on a dial backoff of 5 s and
		// more; a retry the broker asked for skips it.
		dctx = network.WithForceDirectDial(ctx, "refused by the broker's accept rate")
	}
}

// refused reports whether a dial failed because the broker refused the
// connection (QUIC CONNECTION_REFUSED), as it does past its accept rate.
func refused(err error) bool {
	return strings.Contains(err.Error(), "CONNECTION_REFUSED")
}
