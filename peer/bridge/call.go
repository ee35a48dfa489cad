package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/readymesh/readymesh/peer/wire"
)

// AddrInfo turns a broker's advertised identity into a libp2p AddrInfo,
// checking that every address names the same peer.
func AddrInfo(b wire.BrokerInfo) (peer.AddrInfo, error) {
	id, err := peer.Decode(b.PeerID)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("bridge: broker peer ID %q: %w", b.PeerID, err)
	}
	info := peer.AddrInfo{ID: id}
	for _, s := range b.Addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("bridge: broker address %q: %w", s, err)
		}
		transport, pid := peer.SplitAddr(a)
		if transport == nil || len(transport.Bytes()) == 0 {
			return peer.AddrInfo{}, fmt.Errorf("bridge: broker address %q has no transport part (such as /ip4/…/udp/…/quic-v1)", s)
		}
		if pid != "" && pid != id {
			return peer.AddrInfo{}, fmt.Errorf("bridge: address %s names peer %s, not the pinned broker %s", s, pid, id)
		}
		info.Addrs = append(info.Addrs, transport)
	}
	if len(info.Addrs) == 0 {
		return peer.AddrInfo{}, fmt.Errorf("bridge: broker %s has no addresses", id)
	}
	return info, nil
}

// Call opens a stream to p with proto, writes req, reads one reply of at
// most max bytes into reply and closes the stream. The context bounds the
// whole exchange.
//
// The request is written on a goroutine while the reply is read, because a
// broker may answer before it has read the request: it refuses an oversized
// message from its length prefix alone and closes the stream. The reply is
// what counts then, and the unfinished write is cut off by a reset.
func Call(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID, req, reply any, max int) error {
	body, err := wire.Encode(req)
	if err != nil {
		return err
	}
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return fmt.Errorf("open %s: %w", proto, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	} else {
		s.SetDeadline(time.Now().Add(time.Minute))
	}
	written := make(chan error, 1)
	go func() {
		_, err := s.Write(body)
		if err == nil {
			// A failed half-close is harmless: the broker may have
			// answered and closed its side first.
			s.CloseWrite()
		}
		written <- err
	}()
	rerr := wire.NewReader(s).Read(max, reply)
	if rerr != nil {
		s.Reset()
		if werr := <-written; werr != nil {
			return fmt.Errorf("%s: write request: %w (reading the reply: %v)", proto, werr, rerr)
		}
		return fmt.Errorf("%s: read reply: %w", proto, rerr)
	}
	select {
	case <-written:
		s.Close()
	default:
		s.Reset() // answered before reading it all; stop writing
		<-written
	}
	return nil
}
