package bridge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/wire"
)

// OpenRelay joins one side of a session's relay on broker: it sends the
// hello and waits until the broker says the other side has joined too.
// The returned stream then carries relay frames; ctx bounds only the
// joining.
func OpenRelay(ctx context.Context, h host.Host, broker peer.ID, session string) (io.ReadWriteCloser, error) {
	s, err := h.NewStream(ctx, broker, wire.ProtoRelay)
	if err != nil {
		return nil, fmt.Errorf("relay: open: %w", err)
	}
	dl := time.Now().Add(20 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	s.SetDeadline(dl)
	// Cancelling ctx while waiting for the other side abandons the join.
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := wire.Write(s, &wire.RelayHello{Session: session}); err != nil {
		s.Reset()
		return nil, fmt.Errorf("relay: hello: %w", err)
	}
	var r wire.RelayReady
	rd := wire.NewReader(s)
	if err := rd.Read(wire.MaxControl, &r); err != nil {
		s.Reset()
		return nil, fmt.Errorf("relay: %w", err)
	}
	if r.Error != nil {
		s.Reset()
		return nil, fmt.Errorf("relay: %s", r.Error.Message)
	}
	if !stop() {
		return nil, fmt.Errorf("relay: %w", context.Cause(ctx))
	}
	s.SetDeadline(time.Time{})
	// Frames from the other side may have arrived with the ready message.
	return &relayStream{Reader: io.MultiReader(bytes.NewReader(rd.Buffered()), s), s: s}, nil
}

type relayStream struct {
	io.Reader
	s network.Stream
}

func (r *relayStream) Write(p []byte) (int, error) { return r.s.Write(p) }
func (r *relayStream) Close() error                { return r.s.Reset() }
