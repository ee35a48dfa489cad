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
func Call(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID, req, reply any, max int) error {
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return fmt.Errorf("open %s: %w", proto, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	} else {
		s.SetDeadline(time.Now().Add(time.Minute))
	}
	if err := wire.Write(s, req); err != nil {
		s.Reset()
		return err
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return fmt.Errorf("%s: close write: %w", proto, err)
	}
	if err := wire.NewReader(s).Read(max, reply); err != nil {
		s.Reset()
		return fmt.Errorf("%s: read reply: %w", proto, err)
	}
	return nil
}
