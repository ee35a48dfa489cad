package broker

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/readymesh/readymesh/peer/wire"
)

// techConns counts the technicians bridged to this broker now, for the
// broker list. Agents are counted by the presence table.
type techConns struct {
	b  *Broker
	mu sync.Mutex
	n  map[string]int // mu guards; technician key → open connections
}

var _ network.Notifiee = (*techConns)(nil)

func (c *techConns) Connected(_ network.Network, conn network.Conn) {
	id := conn.RemotePeer().String()
	if _, err := c.b.store.TechnicianByKey(id); err != nil {
		return
	}
	c.mu.Lock()
	c.n[id]++
	c.mu.Unlock()
	go c.b.measureRTT(conn.RemotePeer())
}

func (c *techConns) Disconnected(_ network.Network, conn network.Conn) {
	id := conn.RemotePeer().String()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[id] <= 1 {
		delete(c.n, id)
		return
	}
	c.n[id]--
}

func (c *techConns) Listen(network.Network, ma.Multiaddr)      {}
func (c *techConns) ListenClose(network.Network, ma.Multiaddr) {}

func (c *techConns) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

// selfMember describes this broker for the broker list.
func (b *Broker) selfMember() wire.BrokerMember {
	info := b.Info()
	return wire.BrokerMember{Name: b.cfg.Name, Region: b.cfg.Region, State: "alive", PeerID: info.PeerID,
		HTTP: info.HTTP, Bridge: info.Addrs, Agents: b.live.count(), Technicians: b.techs.count(), Self: true}
}

// members lists the brokers of the cluster, this one first.
func (b *Broker) members() []wire.BrokerMember {
	if b.cluster == nil {
		return []wire.BrokerMember{b.selfMember()}
	}
	return b.clusterMembers()
}
