package reach

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/readymesh/readymesh/peer/wire"
)

// Technicians counts the technicians bridged to this broker now, for the
// broker list; agents are counted by the presence table. It watches the
// host's connections (a network.Notifiee).
type Technicians struct {
	known     func(key string) bool
	connected func(peer.ID)

	mu sync.Mutex
	n  map[string]int // mu guards; technician key → open connections
}

var _ network.Notifiee = (*Technicians)(nil)

// TechnicianKeys says whether a key is a technician's.
type TechnicianKeys interface {
	TechnicianByKey(key string) (wire.Technician, error)
}

// NewTechnicians counts the connections of keys st knows as technicians'.
// connected, if not nil, is called (on its own goroutine) for each new
// technician connection.
func NewTechnicians(st TechnicianKeys, connected func(peer.ID)) *Technicians {
	known := func(key string) bool { _, err := st.TechnicianByKey(key); return err == nil }
	return &Technicians{known: known, connected: connected, n: map[string]int{}}
}

// Connected implements network.Notifiee.
func (c *Technicians) Connected(_ network.Network, conn network.Conn) {
	id := conn.RemotePeer()
	if !c.known(id.String()) {
		return
	}
	c.mu.Lock()
	c.n[id.String()]++
	c.mu.Unlock()
	if c.connected != nil {
		go c.connected(id)
	}
}

// Disconnected implements network.Notifiee.
func (c *Technicians) Disconnected(_ network.Network, conn network.Conn) {
	id := conn.RemotePeer().String()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[id] <= 1 {
		delete(c.n, id)
		return
	}
	c.n[id]--
}

// Listen implements network.Notifiee.
func (c *Technicians) Listen(network.Network, ma.Multiaddr) {}

// ListenClose implements network.Notifiee.
func (c *Technicians) ListenClose(network.Network, ma.Multiaddr) {}

// Count is how many technicians are bridged here now.
func (c *Technicians) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}
