package tech

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// SessionOptions are a session request's choices.
type SessionOptions struct {
	Mode      string // wire.ModeReadOnly (the default), ModeInteractive, ModeElevated
	Transport string // wire.TransportAuto (the default), TransportQUIC, TransportRelay, TransportWebRTC
	// LocalAddr is the UDP address of the session socket; empty means
	// any address, a port the kernel picks.
	LocalAddr string
	Logger    *slog.Logger
}

// redirected carries a broker's redirect out of the signalling callback.
type redirected struct{ to wire.BrokerInfo }

func (r *redirected) Error() string { return "the machine is connected to broker " + r.to.Name }

// Connect opens a live session to machine (ID, name or client/name). The
// broker holding the machine's bridge signals it; when that is another
// broker of the cluster, Connect follows the redirect once. The returned
// session belongs to the caller, and so does the client it came through,
// which must stay open while the session may use the relay.
func (c *Client) Connect(ctx context.Context, machine string, opt SessionOptions) (*mesh.Session, *Client, error) {
	if opt.Mode == "" {
		opt.Mode = wire.ModeReadOnly
	}
	if opt.Transport == "" {
		opt.Transport = wire.TransportAuto
	}
	cur := c
	for hop := 0; ; hop++ {
		s, err := cur.connect(ctx, machine, opt)
		var rd *redirected
		if !errors.As(err, &rd) {
			return s, cur, err
		}
		if hop > 0 {
			return nil, cur, fmt.Errorf("session to %s: redirected twice (to %s)", machine, rd.to.Name)
		}
		next, derr := dial(ctx, cur.key, rd.to)
		if derr != nil {
			return nil, cur, fmt.Errorf("session to %s: %s holds its bridge, but: %w", machine, rd.to.Name, derr)
		}
		next.Config, next.home = cur.config(), cur.home
		cur = next
	}
}

func (c *Client) connect(ctx context.Context, machine string, opt SessionOptions) (*mesh.Session, error) {
	cfg := mesh.DialConfig{
		Key:       c.key,
		Transport: opt.Transport,
		Addr:      opt.LocalAddr,
		Broker:    c.broker.ID,
		STUN:      c.stunAddr(),
		Logger:    opt.Logger,
		Relay: func(ctx context.Context, session string) (io.ReadWriteCloser, error) {
			return bridge.OpenRelay(ctx, c.host, c.broker.ID, session)
		},
		Signal: func(ctx context.Context, p wire.PeerParams, sig []byte, token string) (*wire.SessionResult, error) {
			args := wire.SessionArgs{Machine: machine, Mode: opt.Mode, Transport: opt.Transport, Params: p, Sig: sig, StunToken: token}
			var r wire.SessionResult
			if err := c.Do(ctx, wire.OpSessionOpen, args, &r); err != nil {
				return nil, fmt.Errorf("session to %s: %w", machine, err)
			}
			if r.Redirect != nil {
				return nil, &redirected{to: *r.Redirect}
			}
			if r.Grant.Body == nil {
				return nil, fmt.Errorf("session to %s: the broker sent no grant", machine)
			}
			return &r, nil
		},
	}
	if opt.Transport == wire.TransportWebRTC {
		var ice wire.ICEInfo
		if err := c.Do(ctx, wire.OpSessionICE, nil, &ice); err != nil {
			return nil, fmt.Errorf("session to %s: ICE servers: %w", machine, err)
		}
		stun := c.stunAddr()
		if ice.STUNPort != 0 && stun.IsValid() {
			stun = netip.AddrPortFrom(stun.Addr(), uint16(ice.STUNPort))
		}
		cfg.ICEServers = mesh.ICEServers(stun, ice.TURNUser, ice.TURNPassword)
	}
	return mesh.Dial(ctx, cfg)
}

// stunAddr is the connected broker's STUN server: its port on the address
// the bridge reached it at.
func (c *Client) stunAddr() netip.AddrPort {
	if c.info.STUNPort == 0 {
		return netip.AddrPort{}
	}
	for _, conn := range c.host.Network().ConnsToPeer(c.broker.ID) {
		ip, err := manet.ToIP(conn.RemoteMultiaddr())
		if err != nil {
			continue
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			return netip.AddrPortFrom(a.Unmap(), uint16(c.info.STUNPort))
		}
	}
	return netip.AddrPort{}
}

// BrokerName is the name of the broker this client is connected to.
func (c *Client) BrokerName() string { return c.info.Name }
