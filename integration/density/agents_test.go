package density

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// Bounds on the simulated fleet's traffic.
const (
	dialWorkers  = 64               // agents connecting at once
	dialAttempts = 3                // tries per agent before the run fails
	dialTimeout  = 30 * time.Second // per try: dial, identify, hello
	agentVersion = "density-bench"
)

// agentHost is the libp2p host one simulated agent dials from: the agent's
// own key over the bridge's QUIC transport, as peer/bridge builds it, less
// what only costs this process memory and goroutines (the resource and
// connection managers, metrics, TCP and WebSocket). Port reuse is off and
// each UDP socket is bound to src, so every agent reaches the broker from
// its own address and port, as it would in the field.
//
// It keeps the sockets it opens and closes them in Close: with port reuse
// off, go-libp2p v0.51.0's quicreuse closes the quic.Transport of a dial
// but not the socket it handed it (singleOwnerTransport.DecreaseCount), so
// every dial would leak a file descriptor.
type agentHost struct {
	host.Host

	mu    sync.Mutex
	socks []net.PacketConn // mu guards socks
}

func newAgentHost(key crypto.PrivKey, src net.IP) (*agentHost, error) {
	return newAgentHostWrapped(key, src, nil)
}

// newAgentHostWrapped is newAgentHost with each UDP socket the host opens
// handed to libp2p through wrap, if not nil (the rollout benchmark counts
// what a few agents receive that way).
func newAgentHostWrapped(key crypto.PrivKey, src net.IP, wrap func(*net.UDPConn) net.PacketConn) (*agentHost, error) {
	ah := &agentHost{}
	listen := func(network string, _ *net.UDPAddr) (net.PacketConn, error) {
		c, err := net.ListenUDP(network, &net.UDPAddr{IP: src})
		if err != nil {
			return nil, err
		}
		ah.mu.Lock()
		defer ah.mu.Unlock()
		ah.socks = append(ah.socks, c)
		if wrap != nil {
			return wrap(c), nil
		}
		return c, nil
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.QUICReuse(quicreuse.NewConnManager, quicreuse.DisableReuseport(), quicreuse.OverrideListenUDP(listen)),
		libp2p.NoListenAddrs,
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.ConnectionManager(&connmgr.NullConnMgr{}),
		libp2p.UserAgent("readymesh"),
	)
	if err != nil {
		return nil, err
	}
	ah.Host = h
	return ah, nil
}

// Close closes the host, then the sockets it opened.
func (ah *agentHost) Close() error {
	err := ah.Host.Close()
	ah.mu.Lock()
	defer ah.mu.Unlock()
	for _, c := range ah.socks {
		c.Close()
	}
	ah.socks = nil
	return err
}

// dropSockets closes the sockets of the host's dials so far. Call it only
// when the host has no connection up: after a failed dial, or once its
// connections are closed.
func (ah *agentHost) dropSockets() {
	ah.mu.Lock()
	defer ah.mu.Unlock()
	for _, c := range ah.socks {
		c.Close()
	}
	ah.socks = nil
}

// sourceIP returns the loopback address peer i connects from: 127.1.0.1,
// 127.1.0.2, … — one address per peer, as agents on separate sites have,
// which also keeps the broker's per-address admission rate
// (bridge.PerIPConnRate) from pacing the benchmark. Linux routes all of
// 127.0.0.0/8 to the loopback interface.
func sourceIP(i int) net.IP {
	return net.IPv4(127, 1, byte(i/250), byte(1+i%250))
}

// enrollAgent enrols key as machine name with the enrolment token's secret,
// over its own bridge, as `sessiond enroll` does.
func enrollAgent(ctx context.Context, key crypto.PrivKey, src net.IP, broker peer.AddrInfo, tok wire.Token, name string) error {
	h, err := newAgentHost(key, src)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.Connect(ctx, broker); err != nil {
		return fmt.Errorf("enrol %s: dial: %w", name, err)
	}
	req := wire.Enroll{Secret: tok.Secret, BrokerID: tok.Broker.PeerID, Name: name, AgentVersion: agentVersion}
	var reply wire.EnrollReply
	if err := bridge.Call(ctx, h, broker.ID, wire.ProtoEnroll, &req, &reply, wire.MaxControl); err != nil {
		return fmt.Errorf("enrol %s: %w", name, err)
	}
	if reply.Error != nil {
		return fmt.Errorf("enrol %s: refused: %w", name, reply.Error)
	}
	return nil
}

// agent is one simulated, idle, enrolled agent with its presence stream.
type agent struct {
	key crypto.PrivKey
	id  peer.ID
	src net.IP // the address it connects from

	// Set by up; the fleet's goroutines use them after.
	h     *agentHost
	s     network.Stream
	every time.Duration // heartbeat interval the broker asked for
	// spread is the reconnect window the broker gave in its hello.
	spread time.Duration
	seq    uint64 // owned by the fleet's heartbeat goroutine
	acks   atomic.Uint64
	// wrap, if set before up, wraps the UDP sockets of the agent's host.
	wrap func(*net.UDPConn) net.PacketConn
}

// up dials the broker, opens the presence stream and sends the hello and
// the first heartbeat, as sessiond's presence loop does.
func (a *agent) up(ctx context.Context, broker peer.AddrInfo) (*wire.Reader, error) {
	if err := a.prepare(); err != nil {
		return nil, err
	}
	h := a.h
	if err := h.Connect(ctx, broker); err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	s, err := h.NewStream(ctx, broker.ID, wire.ProtoPresence)
	if err != nil {
		return nil, fmt.Errorf("open presence: %w", err)
	}
	a.s = s
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if err := wire.Write(s, &wire.Hello{MachineID: a.id.String(), AgentVersion: agentVersion}); err != nil {
		return nil, err
	}
	r := wire.NewReader(s)
	var hello wire.HelloReply
	if err := r.Read(wire.MaxControl, &hello); err != nil {
		return nil, fmt.Errorf("presence hello: %w", err)
	}
	if hello.Error != nil {
		return nil, fmt.Errorf("broker refused presence: %w", hello.Error)
	}
	s.SetDeadline(time.Time{})
	a.spread = time.Duration(hello.ReconnectSpreadMS) * time.Millisecond
	a.every = time.Duration(hello.HeartbeatMS) * time.Millisecond
	if a.every <= 0 {
		a.every = 5 * time.Second
	}
	return r, a.beat()
}

func (a *agent) beat() error {
	a.seq++
	a.s.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := wire.Write(a.s, &wire.Heartbeat{Seq: a.seq}); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// prepare creates the agent's host unless it has one.
func (a *agent) prepare() error {
	if a.h != nil {
		return nil
	}
	h, err := newAgentHostWrapped(a.key, a.src, a.wrap)
	if err != nil {
		return err
	}
	a.h = h
	return nil
}

// down closes the agent's host and with it its bridge; the next up starts
// from a fresh host.
func (a *agent) down() {
	if a.h != nil {
		a.h.Close()
		a.h = nil
	}
}

// fleet is a set of agents with presence streams up. It owns one goroutine
// per agent reading heartbeat acks and one sending heartbeats to all of
// them at the interval the broker asked for.
type fleet struct {
	agents []*agent
	ctx    context.Context // ends when the fleet closes
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// connectFleet brings every key's presence stream up to broker, at most
// dialWorkers at a time, each agent with dialAttempts tries of dialTimeout.
// On error the agents already up are closed.
func connectFleet(ctx context.Context, keys []crypto.PrivKey, broker peer.AddrInfo) (*fleet, error) {
	return connectFleetWith(ctx, keys, broker, nil)
}

// connectFleetWith is connectFleet with setup, if not nil, called on each
// agent before it first dials.
func connectFleetWith(ctx context.Context, keys []crypto.PrivKey, broker peer.AddrInfo, setup func(i int, a *agent)) (*fleet, error) {
	f, err := newFleet(keys)
	if err != nil {
		return nil, err
	}
	if setup != nil {
		for i, a := range f.agents {
			setup(i, a)
		}
	}
	var up atomic.Int64
	err = forEach(ctx, len(f.agents), dialWorkers, func(i int) error {
		a := f.agents[i]
		var err error
		for try := 0; try < dialAttempts && ctx.Err() == nil; try++ {
			var r *wire.Reader
			actx, acancel := context.WithTimeout(ctx, dialTimeout)
			r, err = a.up(actx, broker)
			acancel()
			if err == nil {
				up.Add(1)
				f.wg.Add(1)
				go f.readAcks(a, r)
				return nil
			}
			// A fresh host on the next try: libp2p backs off from a
			// peer whose dial just failed.
			a.down()
			if refusedByLimit(err) {
				return fmt.Errorf("agent %d (%s): the broker's resource manager refused its presence stream with %d agents up: %w; a broker must admit one presence stream per bridge it admits (peer/bridge limits)",
					i, a.id, up.Load(), err)
			}
		}
		return fmt.Errorf("agent %d (%s): %w", i, a.id, err)
	})
	if err != nil {
		f.close()
		return nil, err
	}
	f.wg.Add(1)
	go f.heartbeats(f.ctx)
	return f, nil
}

// newFleet returns a fleet of keys' agents, none of them up yet.
func newFleet(keys []crypto.PrivKey) (*fleet, error) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{ctx: ctx, cancel: cancel}
	for i, k := range keys {
		id, err := peer.IDFromPrivateKey(k)
		if err != nil {
			cancel()
			return nil, err
		}
		f.agents = append(f.agents, &agent{key: k, id: id, src: sourceIP(i)})
	}
	return f, nil
}

func (f *fleet) readAcks(a *agent, r *wire.Reader) {
	defer f.wg.Done()
	for {
		var ack wire.HeartbeatAck
		if err := r.Read(wire.MaxControl, &ack); err != nil {
			return
		}
		a.acks.Add(1)
	}
}

// heartbeats sends every agent a heartbeat each interval until ctx ends.
// All agents share the broker's one interval.
func (f *fleet) heartbeats(ctx context.Context) {
	defer f.wg.Done()
	t := time.NewTicker(f.agents[0].every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, a := range f.agents {
			if ctx.Err() != nil {
				return
			}
			a.beat() // a failed stream shows up as an agent going offline
		}
	}
}

// acked counts the agents whose first heartbeat was acknowledged.
func (f *fleet) acked() int {
	n := 0
	for _, a := range f.agents {
		if a.acks.Load() > 0 {
			n++
		}
	}
	return n
}

// detach stops the heartbeats and closes every agent's connection to
// broker, as agents whose broker died do, but keeps their hosts to dial
// again with. The fleet's context is done after it.
func (f *fleet) detach(broker peer.ID) {
	f.cancel()
	forEach(context.Background(), len(f.agents), 64, func(i int) error {
		if h := f.agents[i].h; h != nil {
			h.Network().ClosePeer(broker)
		}
		return nil
	})
	f.wg.Wait()
	for _, a := range f.agents {
		if a.h != nil {
			a.h.dropSockets()
		}
	}
}

// close stops the heartbeats and closes every agent's host. It is
// idempotent.
func (f *fleet) close() {
	f.once.Do(func() {
		f.cancel()
		forEach(context.Background(), len(f.agents), 64, func(i int) error {
			f.agents[i].down()
			return nil
		})
		f.wg.Wait()
	})
}

// forEach runs fn(0..n-1) on up to workers goroutines and returns the first
// error, or ctx's; after an error no new calls start.
func forEach(ctx context.Context, n, workers int, fn func(i int) error) error {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error // mu guards firstErr
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return firstErr != nil }
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				if err := fn(i); err != nil {
					fail(err)
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// refusedByLimit reports whether err is the remote resetting a stream
// because a libp2p resource-manager limit was reached.
func refusedByLimit(err error) bool {
	var se *network.StreamError
	return errors.As(err, &se) && se.Remote && se.ErrorCode == network.StreamResourceLimitExceeded
}

var errNoQUIC = errors.New("broker advertises no quic-v1 address")
